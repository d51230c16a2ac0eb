/**
 * /v1/users: the logins of the HTTPS endpoints (access control). A user
 * belongs to one owner and may sign in to that owner's endpoints that need a
 * login (and are not narrowed by `allowed_users`) with its password (Basic or
 * the browser sign-in page) or an API key (Bearer). Owner-scoped like servers:
 * an owner key manages only its own users; other owners' users are reported
 * as missing. Passwords are stored as scrypt hashes, keys as sha256; a key is
 * returned once, when it is created.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { PorticoError } from '../../../shared/errors.js';
import { hashSecret, randomBase32 } from '../../auth/tokens.js';
import { USER_KEY_PREFIX } from '../../access/auth.js';
import { hashPassword } from '../../access/passwords.js';
import type { Store, UserRecord } from '../../store/store.js';
import { ok } from '../envelope.js';
import { ownerFilter } from '../scope.js';
import { errorResponses } from '../schemas/common.js';
import {
  type CreateUserBody,
  type ListUsersQuery,
  createUserBodySchema,
  deletedUserResponse,
  listUsersQuerySchema,
  listUsersResponse,
  userIdParamsSchema,
  userKeyResponse,
  userResponse,
} from '../schemas/users.js';
import type { ApiDeps, Principal } from '../types.js';

const DEFAULT_OWNER = 'default';

export function userView(u: UserRecord, keys?: number) {
  return {
    id: u.id,
    owner: u.owner,
    username: u.username,
    has_password: u.passwordHash !== null,
    ...(keys !== undefined ? { api_keys: keys } : {}),
    created_at: u.createdAt,
    updated_at: u.updatedAt,
  };
}

/** The user `id` if it exists and the principal may see it; NOT_FOUND otherwise. */
async function loadUser(store: Store, principal: Principal, id: string): Promise<UserRecord> {
  const user = await store.getUser(id);
  if (!user || (principal.kind === 'owner' && user.owner !== principal.owner)) throw new PorticoError('NOT_FOUND', `user ${id} not found`, { id });
  return user;
}

export async function userRoutes(app: FastifyInstance, opts: { deps: ApiDeps }): Promise<void> {
  const { store, relay } = opts.deps;
  const tags = ['users'];

  app.post<{ Body: CreateUserBody }>(
    '',
    {
      schema: {
        tags,
        operationId: 'createUser',
        summary: 'Create a login for the HTTPS endpoints of one owner’s servers',
        body: createUserBodySchema,
        response: { 201: userResponse, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { principal } = request;
      const body = request.body;
      let owner = body.owner ?? DEFAULT_OWNER;
      if (principal.kind === 'owner') {
        if (body.owner !== undefined && body.owner !== principal.owner) {
          throw new PorticoError('VALIDATION_FAILED', `this API key can only create users for owner ${principal.owner}`, { field: 'owner' });
        }
        owner = principal.owner;
      }
      const passwordHash = body.password === undefined ? null : await hashPassword(body.password);
      const user = await store.createUser({ id: `usr_${randomBase32(12)}`, owner, username: body.username, passwordHash });
      request.log.info({ userId: user.id, owner, username: user.username }, 'endpoint user created');
      reply.code(201);
      return ok(request, userView(user));
    },
  );

  app.get<{ Querystring: ListUsersQuery }>(
    '',
    {
      schema: {
        tags,
        operationId: 'listUsers',
        summary: 'List endpoint users (owner-scoped keys see only their own; never passwords or keys)',
        querystring: listUsersQuerySchema,
        response: { 200: listUsersResponse, ...errorResponses },
      },
    },
    async (request) => {
      const users = await store.listUsers(ownerFilter(request.principal, request.query.owner));
      const counts = await store.countUserKeys(users.map((u) => u.id));
      return ok(
        request,
        users.map((u) => userView(u, counts.get(u.id) ?? 0)),
        { total: users.length },
      );
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/:id',
    {
      schema: {
        tags,
        operationId: 'deleteUser',
        summary: 'Delete an endpoint user, its API keys and its browser sessions',
        params: userIdParamsSchema,
        response: { 200: deletedUserResponse, ...errorResponses },
      },
    },
    async (request) => {
      const user = await loadUser(store, request.principal, request.params.id);
      if (!(await store.deleteUser(user.id))) throw new PorticoError('NOT_FOUND', `user ${user.id} not found`, { id: user.id });
      await notify(request, () => relay.userDeleted?.(user.id));
      request.log.info({ userId: user.id, owner: user.owner }, 'endpoint user deleted');
      return ok(request, { id: user.id, deleted: true });
    },
  );

  app.post<{ Params: { id: string } }>(
    '/:id/keys',
    {
      schema: {
        tags,
        operationId: 'createUserKey',
        summary: 'Create an API key for an endpoint user (Authorization: Bearer); the key is returned once',
        params: userIdParamsSchema,
        response: { 201: userKeyResponse, ...errorResponses },
      },
    },
    async (request, reply) => {
      const user = await loadUser(store, request.principal, request.params.id);
      const key = `${USER_KEY_PREFIX}${randomBase32(32)}`;
      const record = await store.createUserKey({ id: `ukey_${randomBase32(10)}`, userId: user.id, keyHash: hashSecret(key) });
      request.log.info({ userId: user.id, keyId: record.id }, 'endpoint user key created');
      reply.code(201);
      return ok(request, { id: record.id, user_id: user.id, username: user.username, key, created_at: record.createdAt });
    },
  );
}

/** Relay hooks run after the store changed; their failure must not fail the change. */
async function notify(request: FastifyRequest, fn: () => Promise<void> | undefined): Promise<void> {
  try {
    await fn();
  } catch (err) {
    request.log.error({ err }, 'relay hook userDeleted failed');
  }
}
