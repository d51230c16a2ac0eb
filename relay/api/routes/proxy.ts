/**
 * The proxy routes of a server, in the seed port-mapping API's shapes:
 * the proxy view (`GET /proxy`), the proxy switch and allowlist, mapping
 * create/update/delete and the server-wide access-control document.
 * Registered under /v1/servers and its alias /v1/clusters (the id key in
 * answers follows the prefix: `server_id` or `cluster_id`).
 *
 * Every mapping change goes through checkMapping (relay/mappings/validate.ts,
 * the same rules as agent.yaml mappings) and ends with relay.serverChanged(),
 * which pushes the new table to the agent and opens/closes public listeners
 * live. Mappings the agent declared (source `agent`) are listed too; their
 * ports, protocol, name and http come from agent.yaml (the agent re-declares
 * them on every connect), so here only description, health_check and
 * access_control may change, and they cannot be deleted.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { PorticoError } from '../../../shared/errors.js';
import type { RelayConfig } from '../../../shared/config/types.js';
import { VERSION } from '../../../shared/version.js';
import { newHttpsToken, newMappingId } from '../../mappings/ids.js';
import { rawUrl, httpsUrls } from '../../mappings/urls.js';
import { hostClaims } from '../../mappings/hosts.js';
import { checkAccessControl, checkHealthCheck, checkIpList, checkMapping, healthCheckView, type MappingInput } from '../../mappings/validate.js';
import type { MappingRecord, ServerRecord, Store } from '../../store/store.js';
import { ok } from '../envelope.js';
import { loadServer } from '../scope.js';
import { errorResponses, serverIdParamsSchema } from '../schemas/common.js';
import {
  type CreateMappingBody,
  type ProxyQuery,
  type ProxySettingsBody,
  type ServerKey,
  type UpdateMappingBody,
  accessResponse,
  createMappingBodySchema,
  mappingDeletedResponse,
  mappingIdParamsSchema,
  mappingResponse,
  proxyQuerySchema,
  proxyResponse,
  proxySettingsBodySchema,
  proxySettingsResponse,
  serverAccessBodySchema,
  updateMappingBodySchema,
} from '../schemas/proxy.js';
import type { ApiDeps } from '../types.js';
import type { Observability } from '../../observability.js';

export interface ProxyRoutesOptions {
  deps: ApiDeps;
  resource: 'servers' | 'clusters';
}

interface IdParams {
  id: string;
}

interface MappingParams {
  id: string;
  port_id: string;
}

/**
 * One queue per store for check-then-write of mappings, shared by both
 * prefixes: names are unique per relay and external ports per server, so two
 * concurrent creates must not both pass checkMapping.
 */
const queues = new WeakMap<Store, (fn: () => Promise<unknown>) => Promise<unknown>>();
function serialiser(store: Store) {
  let run = queues.get(store);
  if (!run) {
    let tail: Promise<unknown> = Promise.resolve();
    run = (fn) => {
      const next = tail.then(fn, fn);
      tail = next.catch(() => undefined);
      return next;
    };
    queues.set(store, run);
  }
  const queue = run;
  return <T>(fn: () => Promise<T>) => queue(fn) as Promise<T>;
}

const FLAG_ON = new Set(['', 'true', '1', 'yes']);
const flag = (v: string | undefined) => v !== undefined && FLAG_ON.has(v.toLowerCase());

/** Fields of agent-declared mappings that belong to agent.yaml. */
const AGENT_OWNED_FIELDS = ['internal_port', 'external_port', 'protocol', 'name', 'http', 'group'] as const;

/** Statistics of a mapping nothing was counted for yet. */
function emptyUsage() {
  return { total_requests: 0, unique_visitors: 0, last_accessed: null, avg_response_time_ms: null, bytes_in: 0, bytes_out: 0, open_connections: 0, open_requests: 0, total_connections: 0 };
}

/** The relay's HTTPS proxy endpoint (`https://connect01.example.com`, port only when not 443). */
export function proxyBaseUrl(config: RelayConfig): string {
  const port = config.https.listen.port === 443 ? '' : `:${config.https.listen.port}`;
  return `https://${config.publicHostname}${port}`;
}

export function mappingView(config: RelayConfig, server: ServerRecord, m: MappingRecord, online: boolean, includeHealth = false, obs?: Observability) {
  const raw = rawUrl(config, m);
  const https = httpsUrls(config, server, m);
  const hc = healthCheckView(m.healthCheck);
  // Health as the agent last reported it (relay/health); unknown while offline or before the first check.
  const health = obs?.healthView(m, online) ?? { status: 'unknown', lastCheck: null, consecutiveFailures: 0, detail: null };
  return {
    id: m.id,
    internal_port: m.internalPort,
    external_port: m.externalPort,
    protocol: m.protocol,
    description: m.description,
    name: m.name,
    http: m.http,
    source: m.source,
    group: m.group ?? null,
    // The friendly https://{user}-{name} address when the mapping has a name (as the seed shows it),
    // else the token URL; every URL is in `urls`.
    url: (m.name ? https.find((u) => u.startsWith(`https://${server.owner}-${m.name}.`)) : undefined) ?? https[0] ?? raw,
    urls: { raw, https },
    // disabled: a udp mapping of a server whose UDP is off (kept, not published).
    status: m.protocol === 'udp' && !server.udp ? 'disabled' : online ? 'active' : 'inactive',
    health_status: health.status,
    health_check: hc && includeHealth ? { ...hc, last_check: health.lastCheck, consecutive_failures: health.consecutiveFailures, detail: health.detail } : hc,
    access_control: m.accessControl,
    usage_statistics: obs?.usageView(server.id, m.id) ?? emptyUsage(),
    created_at: m.createdAt,
    updated_at: m.updatedAt,
  };
}

/** The server-wide access-control document as stored, over the defaults that describe "nothing configured". */
export function serverAccessView(stored: Record<string, unknown> | null) {
  return {
    default_authentication: false,
    session_timeout_minutes: null,
    max_concurrent_sessions: null,
    ip_whitelist: [],
    blocked_ips: [],
    rate_limiting: { global_limit: null, per_user_limit: null },
    security_headers: { hsts_enabled: false, content_security_policy: null, x_frame_options: null },
    cors: { enabled: false, allowed_origins: [], allowed_methods: [], allowed_headers: [] },
    compression: { enabled: false, algorithms: [] },
    ...(stored ?? {}),
  };
}

function firstRdn(dn: string, key: string): string | undefined {
  for (const line of dn.split('\n')) if (line.startsWith(`${key}=`)) return line.slice(key.length + 1);
  return undefined;
}

function iso(text: string): string | null {
  const t = Date.parse(text);
  return Number.isNaN(t) ? null : new Date(t).toISOString();
}

/**
 * Issuer and validity of the certificate the HTTPS proxy serves: `https.cert`,
 * or in --dev the generated `<data_dir>/relay.crt`. Read on each call, so a
 * renewed certificate shows at once.
 */
export function sslCertificateInfo(config: RelayConfig, now = Date.now()) {
  const path = config.https.cert ?? (config.dev ? join(config.dataDir, 'relay.crt') : undefined);
  const source = config.https.cert ? 'config' : 'dev';
  const unavailable = (error: string) => ({
    issuer: null,
    subject: null,
    subject_alt_names: [],
    valid_from: null,
    valid_until: null,
    fingerprint_sha256: null,
    source,
    status: 'unavailable',
    error,
  });
  if (!path) return unavailable('https.cert is not configured');
  let x: X509Certificate;
  try {
    x = new X509Certificate(readFileSync(path));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    return unavailable(`cannot read the HTTPS certificate (${code})`);
  }
  const from = Date.parse(x.validFrom);
  const to = Date.parse(x.validTo);
  const status = now < from ? 'not_yet_valid' : now > to ? 'expired' : 'valid';
  return {
    issuer: firstRdn(x.issuer, 'CN') ?? firstRdn(x.issuer, 'O') ?? x.issuer.split('\n').join(', '),
    subject: firstRdn(x.subject, 'CN') ?? x.subject.split('\n').join(', '),
    subject_alt_names: (x.subjectAltName ?? '').split(', ').filter(Boolean),
    valid_from: iso(x.validFrom),
    valid_until: iso(x.validTo),
    fingerprint_sha256: x.fingerprint256,
    source,
    status,
  };
}

export async function proxyRoutes(app: FastifyInstance, opts: ProxyRoutesOptions): Promise<void> {
  const { deps, resource } = opts;
  const { store, relay, config } = deps;
  const tags = [resource];
  const key: ServerKey = resource === 'clusters' ? 'cluster_id' : 'server_id';
  const op = (name: string) => (resource === 'clusters' ? `${name}ViaClusters` : name);
  const serialise = serialiser(store);

  async function notify(request: FastifyRequest, serverId: string): Promise<void> {
    try {
      await relay.serverChanged(serverId);
    } catch (err) {
      // The change is stored; the agent gets it on its next connect at the latest.
      request.log.error({ err, serverId }, 'relay hook serverChanged failed');
    }
  }

  async function loadMapping(server: ServerRecord, portId: string): Promise<MappingRecord> {
    const m = await store.getMapping(server.id, portId);
    if (!m) throw new PorticoError('NOT_FOUND', `mapping ${portId} not found on server ${server.id}`, { id: server.id, port_id: portId });
    return m;
  }

  const view = (server: ServerRecord, m: MappingRecord) => ({ [key]: server.id, ...mappingView(config, server, m, relay.serverStatus(server.id).online, false, relay.obs) });

  app.get<{ Params: IdParams; Querystring: ProxyQuery }>(
    '/:id/proxy',
    {
      schema: {
        tags,
        operationId: op('getProxy'),
        summary: "The server's proxy view: URLs, port mappings, access control, network configuration; optionally health, access logs, SSL certificate",
        params: serverIdParamsSchema,
        querystring: proxyQuerySchema,
        response: { 200: proxyResponse(key), ...errorResponses },
      },
    },
    async (request) => {
      const server = await loadServer(store, request.principal, request.params.id);
      const mappings = await store.listMappings(server.id);
      const online = relay.serverStatus(server.id).online;
      const q = request.query;
      const portMappings = mappings.map((m) => mappingView(config, server, m, online, flag(q.include_health), relay.obs));
      const mapped = new Set(mappings.filter((m) => m.protocol === 'tcp').map((m) => m.externalPort));
      const access = serverAccessView(server.access);
      const data: Record<string, unknown> = {
        [key]: server.id,
        proxy_url: proxyBaseUrl(config),
        proxy_status: !server.proxyEnabled ? 'disabled' : online ? 'active' : 'inactive',
        proxy_enabled: server.proxyEnabled,
        allowed_ips: server.allowedIps,
        public_hostname: config.publicHostname,
        ports: server.ports,
        identity_ports: server.ports.filter((p) => !mapped.has(p)),
        port_mappings: portMappings,
        access_control: access,
        network_configuration: {
          load_balancer: relay.obs
            ? relay.obs.loadBalancerView(server.id, (id) => relay.serverStatus(id).online)
            : { enabled: false, algorithm: 'round_robin', health_check_enabled: false, groups: [] },
          ssl_termination: 'proxy',
          websocket_support: true,
          compression: access.compression,
        },
      };
      if (flag(q.include_ssl_info)) data.ssl_certificate = sslCertificateInfo(config);
      // The last 100 HTTPS requests across the server's mappings, newest first (relay/stats/usage.ts).
      if (flag(q.include_access_logs)) data.access_logs = relay.obs ? relay.obs.accessLogs(server.id, mappings.map((m) => m.id)) : [];
      const lastUpdated = [server.updatedAt, ...mappings.map((m) => m.updatedAt)].sort().at(-1);
      return ok(request, data, {
        last_updated: lastUpdated,
        total_port_mappings: portMappings.length,
        active_port_mappings: portMappings.filter((m) => m.status === 'active').length,
        proxy_version: VERSION,
      });
    },
  );

  app.put<{ Params: IdParams; Body: ProxySettingsBody }>(
    '/:id/proxy',
    {
      schema: {
        tags,
        operationId: op('updateProxySettings'),
        summary: "Turn the server's HTTPS proxy on or off and set its IP allowlist (HTTPS endpoints; docs/access-control.md)",
        params: serverIdParamsSchema,
        body: proxySettingsBodySchema,
        response: { 200: proxySettingsResponse(key), ...errorResponses },
      },
    },
    async (request) => {
      const server = await loadServer(store, request.principal, request.params.id);
      const body = request.body;
      const patch: { proxyEnabled?: boolean; allowedIps?: string[] } = {};
      if (body.enabled !== undefined) patch.proxyEnabled = body.enabled;
      if (body.allowedIps !== undefined) patch.allowedIps = checkIpList(body.allowedIps, 'allowedIps');
      const updated = await store.updateServer(server.id, patch);
      await notify(request, server.id);
      request.log.info({ serverId: server.id, enabled: updated.proxyEnabled, allowedIps: updated.allowedIps.length }, 'proxy settings updated');
      return ok(request, { [key]: server.id, proxyUrl: proxyBaseUrl(config), enabled: updated.proxyEnabled, allowedIps: updated.allowedIps });
    },
  );

  app.post<{ Params: IdParams; Body: CreateMappingBody }>(
    '/:id/proxy/ports',
    {
      schema: {
        tags,
        operationId: op('createPortMapping'),
        summary: "Create a port mapping (external_port auto-assigned from the server's block when omitted); applied live",
        params: serverIdParamsSchema,
        body: createMappingBodySchema,
        response: { 201: mappingResponse(key), ...errorResponses },
      },
    },
    async (request, reply) => {
      const server = await loadServer(store, request.principal, request.params.id);
      const body = request.body;
      rejectCustomDomain(body);
      const healthCheck = checkHealthCheck(body.health_check);
      const accessControl = checkAccessControl(body.access_control);
      const created = await serialise(async () => {
        // Re-read inside the queue: UDP may have been switched and mappings added meanwhile.
        const current = (await store.getServer(server.id)) ?? server;
        const fields = await checkMapping(body as MappingInput, {
          config,
          server: current,
          existing: await store.listMappings(server.id),
          findByName: (name) => store.findMappingByName(name),
          hostClaims: () => hostClaims(store),
        });
        return store.createMapping({
          id: newMappingId(),
          serverId: server.id,
          ...fields,
          httpsToken: fields.http ? newHttpsToken() : null,
          source: 'api',
          healthCheck,
          accessControl,
        });
      });
      await notify(request, server.id);
      request.log.info({ serverId: server.id, mappingId: created.id, internal: created.internalPort, external: created.externalPort }, 'mapping created');
      reply.code(201);
      return ok(request, view(server, created));
    },
  );

  app.put<{ Params: MappingParams; Body: UpdateMappingBody }>(
    '/:id/proxy/ports/:port_id',
    {
      schema: {
        tags,
        operationId: op('updatePortMapping'),
        summary: 'Update a port mapping (only the fields given); applied live. Agent-declared mappings: description, health_check, access_control only',
        params: mappingIdParamsSchema,
        body: updateMappingBodySchema,
        response: { 200: mappingResponse(key), ...errorResponses },
      },
    },
    async (request) => {
      const server = await loadServer(store, request.principal, request.params.id);
      const body = request.body;
      rejectCustomDomain(body);
      const updated = await serialise(async () => {
        const m = await loadMapping(server, request.params.port_id);
        const has = (k: keyof UpdateMappingBody) => Object.prototype.hasOwnProperty.call(body, k);
        if (m.source === 'agent') {
          const current: Record<(typeof AGENT_OWNED_FIELDS)[number], unknown> = {
            internal_port: m.internalPort,
            external_port: m.externalPort,
            protocol: m.protocol,
            name: m.name,
            http: m.http,
            group: m.group ?? null,
          };
          for (const f of AGENT_OWNED_FIELDS) {
            const given = f === 'name' && body[f] === '' ? null : body[f];
            if (has(f) && given !== current[f]) {
              throw new PorticoError(
                'VALIDATION_FAILED',
                `mapping ${m.id} is declared in the agent's agent.yaml; change ${f} there (only description, health_check and access_control can be changed through the API)`,
                { field: f, source: 'agent' },
              );
            }
          }
        }
        const input: MappingInput = {
          internal_port: body.internal_port ?? m.internalPort,
          external_port: has('external_port') ? body.external_port : m.externalPort,
          protocol: body.protocol ?? m.protocol,
          description: body.description ?? m.description,
          name: has('name') ? body.name : m.name,
          http: body.http ?? m.http,
          group: has('group') ? body.group : m.group,
        };
        const healthCheck = has('health_check') ? checkHealthCheck(body.health_check) : m.healthCheck;
        const accessControl = has('access_control') ? checkAccessControl(body.access_control) : m.accessControl;
        const current = (await store.getServer(server.id)) ?? server;
        const fields = await checkMapping(input, {
          config,
          server: current,
          existing: await store.listMappings(server.id),
          selfId: m.id,
          findByName: (name) => store.findMappingByName(name),
          hostClaims: () => hostClaims(store),
        });
        return store.updateMapping(server.id, m.id, {
          ...fields,
          httpsToken: fields.http ? (m.httpsToken ?? newHttpsToken()) : null,
          healthCheck,
          accessControl,
        });
      });
      await notify(request, server.id);
      request.log.info({ serverId: server.id, mappingId: updated.id, fields: Object.keys(body) }, 'mapping updated');
      return ok(request, view(server, updated));
    },
  );

  app.delete<{ Params: MappingParams }>(
    '/:id/proxy/ports/:port_id',
    {
      schema: {
        tags,
        operationId: op('deletePortMapping'),
        summary: 'Remove a port mapping; applied live (its public port falls back to identity forwarding)',
        params: mappingIdParamsSchema,
        response: { 200: mappingDeletedResponse(key), ...errorResponses },
      },
    },
    async (request) => {
      const server = await loadServer(store, request.principal, request.params.id);
      await serialise(async () => {
        const m = await loadMapping(server, request.params.port_id);
        if (m.source === 'agent') {
          throw new PorticoError('CONFLICT', `mapping ${m.id} is declared in the agent's agent.yaml and comes back on every connect; remove it there`, {
            port_id: m.id,
            source: 'agent',
          });
        }
        if (!(await store.deleteMapping(server.id, m.id))) throw new PorticoError('NOT_FOUND', `mapping ${m.id} not found on server ${server.id}`, { id: server.id, port_id: m.id });
      });
      await notify(request, server.id);
      request.log.info({ serverId: server.id, mappingId: request.params.port_id }, 'mapping deleted');
      return ok(request, { [key]: server.id, id: request.params.port_id, deleted: true });
    },
  );

  app.put<{ Params: IdParams; Body: Record<string, unknown> }>(
    '/:id/proxy/access',
    {
      schema: {
        tags,
        operationId: op('updateProxyAccess'),
        summary: 'Replace the server-wide access-control document; applied at once (docs/access-control.md)',
        params: serverIdParamsSchema,
        body: serverAccessBodySchema,
        response: { 200: accessResponse(key), ...errorResponses },
      },
    },
    async (request) => {
      const server = await loadServer(store, request.principal, request.params.id);
      const doc = serverAccessAliases(checkAccessControl(request.body, '') ?? {});
      const updated = await store.updateServer(server.id, { access: doc });
      await notify(request, server.id);
      request.log.info({ serverId: server.id, keys: Object.keys(doc) }, 'access control updated');
      return ok(request, { [key]: server.id, access_control: serverAccessView(updated.access), updated_at: updated.updatedAt });
    },
  );
}

/**
 * The per-mapping names accepted server-wide, stored under the server-wide
 * document's own names: `authentication_required` as `default_authentication`,
 * `rate_limit` as `rate_limiting.per_user_limit`. Both names with different
 * values is a VALIDATION_FAILED.
 */
export function serverAccessAliases(doc: Record<string, unknown>): Record<string, unknown> {
  const out = { ...doc };
  if (out.authentication_required !== undefined) {
    if (out.default_authentication !== undefined && out.default_authentication !== out.authentication_required) {
      throw new PorticoError('VALIDATION_FAILED', 'authentication_required and default_authentication are the same setting here and disagree', { field: 'authentication_required' });
    }
    out.default_authentication = out.authentication_required;
    delete out.authentication_required;
  }
  if (out.rate_limit !== undefined) {
    const rl = (out.rate_limiting ?? {}) as Record<string, unknown>;
    if (rl.per_user_limit !== undefined && JSON.stringify(rl.per_user_limit) !== JSON.stringify(out.rate_limit)) {
      throw new PorticoError('VALIDATION_FAILED', 'rate_limit and rate_limiting.per_user_limit are the same setting here and disagree', { field: 'rate_limit' });
    }
    out.rate_limiting = { ...rl, per_user_limit: out.rate_limit };
    delete out.rate_limit;
  }
  return out;
}

/** Refuses what the seed API has and this relay does not: custom domains, plain HTTP (ssl_redirect: false). */
function rejectCustomDomain(body: { custom_domain?: unknown; ssl_redirect?: unknown }): void {
  if (body.ssl_redirect === false) {
    throw new PorticoError('VALIDATION_FAILED', 'ssl_redirect cannot be turned off: the relay serves endpoints over HTTPS only and redirects plain HTTP to HTTPS', {
      field: 'ssl_redirect',
    });
  }
  if (body.custom_domain !== undefined) {
    throw new PorticoError(
      'VALIDATION_FAILED',
      'custom domains are not supported; http mappings are served at https://{token}.secure.{domain} and https://{owner}-{name}.{domain}',
      { field: 'custom_domain' },
    );
  }
}
