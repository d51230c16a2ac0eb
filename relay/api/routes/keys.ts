/** /v1/keys: owner-scoped API keys, managed with the admin key. The key is shown once; only its hash is stored. */
import type { FastifyInstance } from 'fastify';
import { PorticoError } from '../../../shared/errors.js';
import { hashSecret, randomBase32 } from '../../auth/tokens.js';
import { makeApiKey } from '../admin-key.js';
import { requireAdmin } from '../auth.js';
import { ok } from '../envelope.js';
import { apiKeyView } from '../present.js';
import { errorResponses } from '../schemas/common.js';
import { type CreateKeyBody, createKeyBodySchema, createKeyResponse, deletedKeyResponse, keyIdParamsSchema, listKeysResponse } from '../schemas/keys.js';
import type { ApiDeps } from '../types.js';

export async function keyRoutes(app: FastifyInstance, opts: { deps: ApiDeps }): Promise<void> {
  const { store } = opts.deps;
  const tags = ['keys'];
  app.addHook('preHandler', async (request) => requireAdmin(request));

  app.post<{ Body: CreateKeyBody }>(
    '',
    {
      schema: {
        tags,
        operationId: 'createApiKey',
        summary: 'Create an API key scoped to one owner (admin only); the key is returned once',
        body: createKeyBodySchema,
        response: { 201: createKeyResponse, ...errorResponses },
      },
    },
    async (request, reply) => {
      const key = makeApiKey();
      const record = await store.createApiKey({ id: `key_${randomBase32(10)}`, owner: request.body.owner, keyHash: hashSecret(key) });
      request.log.info({ keyId: record.id, owner: record.owner }, 'api key created');
      reply.code(201);
      return ok(request, { ...apiKeyView(record), key });
    },
  );

  app.get(
    '',
    {
      schema: {
        tags,
        operationId: 'listApiKeys',
        summary: 'List API keys (admin only; never the keys themselves)',
        response: { 200: listKeysResponse, ...errorResponses },
      },
    },
    async (request) => {
      const keys = (await store.listApiKeys()).map(apiKeyView);
      return ok(request, keys, { total: keys.length });
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/:id',
    {
      schema: {
        tags,
        operationId: 'deleteApiKey',
        summary: 'Revoke an API key (admin only)',
        params: keyIdParamsSchema,
        response: { 200: deletedKeyResponse, ...errorResponses },
      },
    },
    async (request) => {
      const deleted = await store.deleteApiKey(request.params.id);
      if (!deleted) throw new PorticoError('NOT_FOUND', `api key ${request.params.id} not found`, { id: request.params.id });
      request.log.info({ keyId: request.params.id }, 'api key deleted');
      return ok(request, { id: request.params.id, deleted: true });
    },
  );
}
