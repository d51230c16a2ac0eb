/**
 * /v1/servers: register, list, show, remove servers; toggle UDP; rotate the
 * agent token. Registered twice, under /v1/servers and its seed-API alias
 * /v1/clusters, with the same handlers.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { PorticoError, isPorticoError } from '../../../shared/errors.js';
import { makeAgentToken, randomBase32 } from '../../auth/tokens.js';
import type { ServerRecord } from '../../store/store.js';
import { ok } from '../envelope.js';
import { serverDetail, serverView } from '../present.js';
import { loadServer, ownerFilter } from '../scope.js';
import { errorResponses, serverIdParamsSchema } from '../schemas/common.js';
import {
  type CreateServerBody,
  type ListServersQuery,
  type UdpBody,
  createServerBodySchema,
  createServerResponse,
  deletedResponse,
  listServersQuerySchema,
  listServersResponse,
  serverDetailResponse,
  serverResponse,
  tokenResponse,
  udpBodySchema,
} from '../schemas/servers.js';
import type { ApiDeps } from '../types.js';

export interface ServerRoutesOptions {
  deps: ApiDeps;
  /** 'servers' for the canonical routes, 'clusters' for the alias (documented under its own tag). */
  resource: 'servers' | 'clusters';
}

interface IdParams {
  id: string;
}

const DEFAULT_OWNER = 'default';
const GENERATED_ID_ATTEMPTS = 5;

/** A random DNS-safe server id: `srv-` + 8 base32 chars. */
export function generateServerId(): string {
  return `srv-${randomBase32(8)}`;
}

/**
 * Serialises allocate-then-create so two concurrent creates cannot be handed
 * the same free block (the allocator reads the store, which only changes on create).
 */
function createMutex() {
  let tail: Promise<unknown> = Promise.resolve();
  return function run<T>(fn: () => Promise<T>): Promise<T> {
    const next = tail.then(fn, fn);
    tail = next.catch(() => undefined);
    return next;
  };
}

export async function serverRoutes(app: FastifyInstance, opts: ServerRoutesOptions): Promise<void> {
  const { deps, resource } = opts;
  const { store, relay, config } = deps;
  const tags = [resource];
  const alias = resource === 'clusters';
  const op = (name: string) => (alias ? `${name}ViaClusters` : name);
  const serialise = createMutex();

  /** Relay hooks run after the store changed; their failure must not undo or fail the change. */
  async function notify(request: FastifyRequest, what: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      request.log.error({ err }, `relay hook ${what} failed`);
    }
  }

  app.post<{ Body: CreateServerBody }>(
    '',
    {
      schema: {
        tags,
        operationId: op('createServer'),
        summary: 'Register a server: allocates a block of public ports and returns its agent token (shown once)',
        body: createServerBodySchema,
        response: { 201: createServerResponse, ...errorResponses },
      },
    },
    async (request, reply) => {
      const body = request.body ?? {};
      const principal = request.principal;
      let owner = body.owner ?? DEFAULT_OWNER;
      if (principal.kind === 'owner') {
        if (body.owner !== undefined && body.owner !== principal.owner) {
          throw new PorticoError('VALIDATION_FAILED', `this API key can only create servers for owner ${principal.owner}`, { field: 'owner' });
        }
        owner = principal.owner;
      }
      const count = body.ports ?? config.ports.perServer;

      const created = await serialise(async (): Promise<{ server: ServerRecord; token: string }> => {
        const limit = config.servers.maxPerOwner;
        if (principal.kind === 'owner' && limit > 0) {
          const have = (await store.listServers(owner)).length;
          if (have >= limit) {
            throw new PorticoError('SERVER_LIMIT_REACHED', `owner ${owner} already has ${have} servers (limit ${limit}); delete one or ask the operator to raise servers.max_per_owner`, { owner, limit });
          }
        }
        const explicitId = body.id;
        if (explicitId !== undefined && (await store.getServer(explicitId))) {
          throw new PorticoError('CONFLICT', `server ${explicitId} already exists`, { field: 'id', id: explicitId });
        }
        const ports = await relay.allocatePorts(count);
        try {
          for (let attempt = 1; ; attempt++) {
            const id = explicitId ?? generateServerId();
            const { token, tokenHash } = makeAgentToken(id);
            try {
              const server = await store.createServer({ id, owner, ports, udp: body.udp ?? false, tokenHash });
              return { server, token };
            } catch (err) {
              // A generated id may collide (40 bits); try another. An explicit one is the caller's conflict.
              if (explicitId === undefined && isPorticoError(err) && err.code === 'CONFLICT' && attempt < GENERATED_ID_ATTEMPTS) continue;
              throw err;
            }
          }
        } finally {
          // Stored with the server (so taken by the store from now on), or not created: either way no longer pending.
          relay.releasePorts?.(ports);
        }
      });

      await notify(request, 'serverChanged', () => relay.serverChanged(created.server.id));
      request.log.info({ serverId: created.server.id, owner, ports: created.server.ports.length }, 'server created');
      reply.code(201);
      const { online: _o, agent_version: _v, connected_since: _c, ...view } = serverView(created.server, relay.serverStatus(created.server.id));
      return ok(request, { ...view, agent_token: created.token });
    },
  );

  app.get<{ Querystring: ListServersQuery }>(
    '',
    {
      schema: {
        tags,
        operationId: op('listServers'),
        summary: 'List servers (owner-scoped keys see only their own)',
        querystring: listServersQuerySchema,
        response: { 200: listServersResponse, ...errorResponses },
      },
    },
    async (request) => {
      const servers = await store.listServers(ownerFilter(request.principal, request.query.owner));
      const data = servers.map((s) => serverView(s, relay.serverStatus(s.id)));
      return ok(request, data, { total: data.length });
    },
  );

  app.get<{ Params: IdParams }>(
    '/:id',
    {
      schema: {
        tags,
        operationId: op('getServer'),
        summary: 'Show a server: allocation, agent connection state, mappings',
        params: serverIdParamsSchema,
        response: { 200: serverDetailResponse, ...errorResponses },
      },
    },
    async (request) => {
      const server = await loadServer(store, request.principal, request.params.id);
      const mappings = await store.listMappings(server.id);
      return ok(request, serverDetail(server, relay.serverStatus(server.id), mappings, config.publicHostname));
    },
  );

  app.delete<{ Params: IdParams }>(
    '/:id',
    {
      schema: {
        tags,
        operationId: op('deleteServer'),
        summary: 'Remove a server: disconnects its agent and frees its ports',
        params: serverIdParamsSchema,
        response: { 200: deletedResponse, ...errorResponses },
      },
    },
    async (request) => {
      const server = await loadServer(store, request.principal, request.params.id);
      await notify(request, 'serverDeleted', () => relay.serverDeleted(server.id));
      const deleted = await store.deleteServer(server.id);
      if (!deleted) throw new PorticoError('NOT_FOUND', `server ${server.id} not found`, { id: server.id });
      request.log.info({ serverId: server.id }, 'server deleted');
      return ok(request, { id: server.id, deleted: true });
    },
  );

  app.put<{ Params: IdParams; Body: UdpBody }>(
    '/:id/udp',
    {
      schema: {
        tags,
        operationId: op('setServerUdp'),
        summary: 'Turn UDP forwarding on or off for a server',
        params: serverIdParamsSchema,
        body: udpBodySchema,
        response: { 200: serverResponse, ...errorResponses },
      },
    },
    async (request) => {
      const server = await loadServer(store, request.principal, request.params.id);
      const enabled = request.body.enabled;
      // Turning UDP off keeps the server's udp mappings (status "disabled", their public UDP
      // ports closed: relay/mappings/resolve.ts) so turning it on again restores them.
      const updated = server.udp === enabled ? server : await store.updateServer(server.id, { udp: enabled });
      if (updated !== server) await notify(request, 'serverChanged', () => relay.serverChanged(server.id));
      return ok(request, serverView(updated, relay.serverStatus(server.id)));
    },
  );

  app.post<{ Params: IdParams }>(
    '/:id/token',
    {
      schema: {
        tags,
        operationId: op('rotateServerToken'),
        summary: 'Rotate the agent token; the old one stops working and its agent is disconnected',
        params: serverIdParamsSchema,
        response: { 200: tokenResponse, ...errorResponses },
      },
    },
    async (request) => {
      const server = await loadServer(store, request.principal, request.params.id);
      const { token, tokenHash } = makeAgentToken(server.id);
      await store.updateServer(server.id, { tokenHash });
      await notify(request, 'tokenRotated', () => relay.tokenRotated(server.id));
      request.log.info({ serverId: server.id }, 'agent token rotated');
      return ok(request, { id: server.id, agent_token: token });
    },
  );
}
