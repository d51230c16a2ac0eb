/**
 * The management API: a fastify app with bearer-key auth, one envelope for
 * every answer, JSON-schema validation and an OpenAPI document generated from
 * the same schemas (GET /v1/openapi.json, no auth).
 */
import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { authHook } from './auth.js';
import { installErrorHandling } from './envelope.js';
import { keyRoutes } from './routes/keys.js';
import { proxyRoutes } from './routes/proxy.js';
import { serverRoutes } from './routes/servers.js';
import { userRoutes } from './routes/users.js';
import type { ApiDeps } from './types.js';

export type { ApiDeps, RelayHooks, ServerStatus, Principal } from './types.js';

export const OPENAPI_PATH = '/v1/openapi.json';
const BODY_LIMIT = 256 * 1024;

/** Only what an operator needs to trace a request; never headers (Authorization). */
function safeRequestSerializer(req: { method?: string; url?: string; ip?: string; socket?: { remotePort?: number } }) {
  return { method: req.method, url: req.url?.split('?')[0], remoteAddress: req.ip, remotePort: req.socket?.remotePort };
}

/**
 * Builds the management API; not yet `ready()`, so the relay may add its own
 * routes (e.g. /metrics) before it calls `listen()`. The caller closes it.
 */
export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const logger = deps.logger.child(
    { component: 'api' },
    // Only a serializer: a child `redact` would replace the relay logger's own redaction paths.
    { serializers: { req: safeRequestSerializer } },
  );
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT,
    // Reject unknown body fields instead of silently dropping them.
    ajv: { customOptions: { removeAdditional: false, allErrors: false } },
    return503OnClosing: true,
    // GET /v1/servers/ is GET /v1/servers.
    routerOptions: { ignoreTrailingSlash: true },
  });

  // An empty JSON body is read as "no body" (curl -X POST -H 'content-type: application/json').
  const defaultJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (typeof body === 'string' && body.trim() === '') return done(null, undefined);
    defaultJson(request, body as string, done);
  });
  // `curl -d '{…}'` labels a JSON body application/x-www-form-urlencoded: a body that is a JSON
  // object is read as one whatever its label; anything else keeps the clear 415.
  app.addContentTypeParser(['application/x-www-form-urlencoded', 'text/plain'], { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body.trim() : '';
    if (text === '') return done(null, undefined);
    if (!text.startsWith('{')) {
      const err = new Error(`send the body as JSON with Content-Type: application/json (got ${String(request.headers['content-type']).split(';')[0]})`) as Error & { statusCode: number; code: string };
      err.statusCode = 415;
      err.code = 'FST_ERR_CTP_INVALID_MEDIA_TYPE';
      return done(err, undefined);
    }
    defaultJson(request, text, done);
  });
  // Routes whose body fields are all optional accept a missing body as {}.
  app.addHook('preValidation', async (request) => {
    if (request.body === undefined && request.routeOptions.schema?.body) request.body = {};
  });

  installErrorHandling(app);

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Portico management API',
        version: '1',
        description:
          'Register servers (GPU containers), their public port blocks and mappings. Every call needs `Authorization: Bearer <api key>`. ' +
          '`/v1/clusters/{id}/…` is an alias of `/v1/servers/{id}/…`.',
      },
      servers: [{ url: `http://${deps.config.api.listen.host}:${deps.config.api.listen.port}` }],
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'API key (admin or owner-scoped)' } } },
      security: [{ bearer: [] }],
      tags: [
        { name: 'servers', description: 'Servers and their allocations' },
        { name: 'clusters', description: 'Alias of servers (the seed API name)' },
        { name: 'keys', description: 'Owner-scoped API keys (admin only)' },
        { name: 'users', description: 'Logins of the HTTPS endpoints (access control): passwords and user API keys' },
      ],
    },
  });

  app.get(OPENAPI_PATH, { schema: { hide: true } }, async () => app.swagger());

  // Everything else needs a key; registered in a child scope so the OpenAPI route and 404s stay outside.
  await app.register(async (api) => {
    api.decorateRequest('principal', null as never);
    api.addHook('onRequest', authHook(deps.adminKeyHash, deps.store));
    await api.register(serverRoutes, { prefix: '/v1/servers', deps, resource: 'servers' });
    await api.register(serverRoutes, { prefix: '/v1/clusters', deps, resource: 'clusters' });
    await api.register(proxyRoutes, { prefix: '/v1/servers', deps, resource: 'servers' });
    await api.register(proxyRoutes, { prefix: '/v1/clusters', deps, resource: 'clusters' });
    await api.register(keyRoutes, { prefix: '/v1/keys', deps });
    await api.register(userRoutes, { prefix: '/v1/users', deps });
  });

  return app;
}
