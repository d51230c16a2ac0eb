/**
 * Request and response schemas of the proxy routes (`/v1/servers/{id}/proxy…`
 * and the `/v1/clusters` alias), in the seed API's shapes (snake_case, except
 * `PUT /proxy`'s `{enabled, allowedIps}` / `{proxyUrl, enabled}` as the seed has them).
 * The numbers in them come from relay/mappings/validate.ts, which also checks
 * what JSON schema cannot (CIDRs, timeout <= interval).
 */
import { HEALTH_LIMITS, IP_LIST_MAX } from '../../mappings/validate.js';
import { okEnvelope, timestampSchema } from './common.js';

export type ServerKey = 'server_id' | 'cluster_id';

// ---- requests ----

export interface ProxyQuery {
  include_health?: string;
  include_access_logs?: string;
  include_ssl_info?: string;
}

export interface ProxySettingsBody {
  enabled?: boolean;
  allowedIps?: string[];
}

export interface HealthCheckBody {
  enabled?: boolean;
  path?: string;
  interval_seconds?: number;
  timeout_seconds?: number;
  expected_status?: number;
  retries?: number;
}

export interface CreateMappingBody {
  internal_port: number;
  external_port?: number;
  protocol?: 'tcp' | 'udp';
  description?: string;
  name?: string | null;
  http?: boolean;
  health_check?: HealthCheckBody | null;
  access_control?: Record<string, unknown> | null;
  custom_domain?: string;
  /** The seed's flag: true is what the relay does anyway; false is refused. */
  ssl_redirect?: boolean;
  group?: string | null;
}

export type UpdateMappingBody = Partial<CreateMappingBody>;

/**
 * `true`/`1`/`yes` in any case (Python's requests sends `True`), or the bare
 * flag (`?include_health`), turn an include on.
 */
const flagSchema = {
  type: 'string',
  pattern: '^(|[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|1|0|[Yy][Ee][Ss]|[Nn][Oo])$',
  description: '`true` (or the bare flag, `1`, `yes`; any case) to include; `false` or absent to leave out',
} as const;

export const proxyQuerySchema = {
  type: 'object',
  properties: {
    include_health: { ...flagSchema, description: 'Add the health-check runtime state (`last_check`, `consecutive_failures`) to each mapping' },
    include_access_logs: { ...flagSchema, description: "Add `access_logs`: the server's most recent 100 HTTPS requests, newest first (secret query values redacted)" },
    include_ssl_info: { ...flagSchema, description: "Add `ssl_certificate`, read from the relay's HTTPS certificate" },
  },
  // Other query parameters (cache busters, a client's own) are ignored, as web APIs do.
  additionalProperties: true,
} as const;

export const mappingIdParamsSchema = {
  type: 'object',
  required: ['id', 'port_id'],
  properties: {
    id: { type: 'string', pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$', minLength: 1, maxLength: 63, description: 'Server id' },
    port_id: { type: 'string', minLength: 1, maxLength: 64, description: 'Mapping id (`port_…`)' },
  },
  additionalProperties: false,
} as const;

const ipListSchema = {
  type: 'array',
  maxItems: IP_LIST_MAX,
  items: { type: 'string', minLength: 1, maxLength: 64, description: 'IPv4/IPv6 address or CIDR block' },
} as const;

export const proxySettingsBodySchema = {
  type: 'object',
  minProperties: 1,
  properties: {
    enabled: { type: 'boolean', description: "Turn the server's HTTPS proxy on or off (raw ports are unaffected)" },
    allowedIps: { ...ipListSchema, description: 'Server-wide IP allowlist of the HTTPS endpoints (empty = everyone); raw ports use access ip_whitelist' },
  },
  additionalProperties: false,
} as const;

const rateLimitSchema = {
  type: 'object',
  required: ['requests_per_minute'],
  properties: {
    requests_per_minute: { type: 'integer', minimum: 1, maximum: 1_000_000 },
    burst_size: { type: 'integer', minimum: 1, maximum: 1_000_000 },
  },
  additionalProperties: false,
} as const;

const corsSchema = {
  type: 'object',
  properties: {
    enabled: { type: 'boolean' },
    allowed_origins: { type: 'array', maxItems: 100, items: { type: 'string', minLength: 1, maxLength: 255 } },
    allowed_methods: {
      type: 'array',
      maxItems: 16,
      items: { type: 'string', enum: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', '*'] },
    },
    allowed_headers: { type: 'array', maxItems: 100, items: { type: 'string', minLength: 1, maxLength: 128 } },
  },
  additionalProperties: false,
} as const;

const userListSchema = { type: 'array', maxItems: 1000, items: { type: 'string', minLength: 1, maxLength: 128 } } as const;

const securityHeadersSchema = {
  type: 'object',
  properties: {
    hsts_enabled: { type: 'boolean' },
    content_security_policy: { type: 'string', maxLength: 4096 },
    x_frame_options: { type: 'string', enum: ['DENY', 'SAMEORIGIN'] },
  },
  additionalProperties: false,
} as const;

const compressionSchema = {
  type: 'object',
  properties: {
    enabled: { type: 'boolean' },
    algorithms: { type: 'array', maxItems: 2, uniqueItems: true, items: { type: 'string', enum: ['gzip', 'br'] } },
  },
  additionalProperties: false,
} as const;

/** A mapping's access control, as the seed API names it. */
export const mappingAccessSchema = {
  type: 'object',
  description: 'Per-mapping access control, enforced by the relay (docs/access-control.md)',
  properties: {
    authentication_required: { type: 'boolean' },
    public_access: { type: 'boolean' },
    allowed_users: userListSchema,
    ip_whitelist: ipListSchema,
    blocked_ips: ipListSchema,
    rate_limit: rateLimitSchema,
    session_timeout_minutes: { type: 'number', minimum: 0.05, maximum: 525_600, description: 'Browser session lifetime in minutes (fractions allowed: 0.5 = 30 s); default 480' },
    max_concurrent_sessions: { type: 'integer', minimum: 1, maximum: 100_000 },
    cors: corsSchema,
    security_headers: securityHeadersSchema,
    compression: compressionSchema,
  },
  additionalProperties: false,
} as const;

const L = HEALTH_LIMITS;
export const healthCheckBodySchema = {
  type: 'object',
  description: 'Health check run by the agent inside the container (HTTP GET of `path`, or TCP connect when no path)',
  properties: {
    enabled: { type: 'boolean', description: 'default true' },
    path: { type: 'string', maxLength: L.pathMaxLength, description: 'HTTP path starting with `/`; empty = TCP connect check' },
    interval_seconds: { type: 'integer', minimum: L.intervalSeconds.min, maximum: L.intervalSeconds.max, description: `default ${L.intervalSeconds.default}` },
    timeout_seconds: { type: 'integer', minimum: L.timeoutSeconds.min, maximum: L.timeoutSeconds.max, description: `default ${L.timeoutSeconds.default}; at most interval_seconds` },
    expected_status: { type: 'integer', minimum: L.expectedStatus.min, maximum: L.expectedStatus.max, description: `default ${L.expectedStatus.default}` },
    retries: { type: 'integer', minimum: L.retries.min, maximum: L.retries.max, description: `consecutive failures before unhealthy; default ${L.retries.default}` },
  },
  additionalProperties: false,
} as const;

const mappingBodyProperties = {
  internal_port: { type: 'integer', minimum: 1, maximum: 65535, description: 'Port inside the container' },
  external_port: { type: 'integer', minimum: 1, maximum: 65535, description: "Public port from the server's block; auto-assigned when omitted" },
  protocol: { type: 'string', enum: ['tcp', 'udp'], description: 'default tcp; udp needs the server to have UDP enabled' },
  description: { type: 'string', maxLength: 200 },
  name: {
    type: ['string', 'null'],
    maxLength: 40,
    description: 'Unique per relay; serves https://{owner}-{name}.{domain} for http mappings (null or "" clears it)',
  },
  http: { type: 'boolean', description: 'Also publish an HTTPS endpoint (tcp only)' },
  health_check: { anyOf: [healthCheckBodySchema, { type: 'null' }], description: 'null removes it' },
  access_control: { anyOf: [mappingAccessSchema, { type: 'null' }], description: 'null removes it' },
  custom_domain: { type: 'string', description: 'Not supported: always answered with VALIDATION_FAILED' },
  ssl_redirect: { type: 'boolean', description: 'Accepted as in the seed API: plain HTTP always redirects to HTTPS (true); false is refused' },
  group: {
    type: ['string', 'null'],
    maxLength: 40,
    description:
      'Replica group (tcp only): mappings of one owner with the same group, on any servers, share https://{owner}-{group}.{domain} and balance new requests and TCP connections round-robin over the online, healthy members (docs/replicas.md); null or "" clears it',
  },
} as const;

export const createMappingBodySchema = {
  type: 'object',
  required: ['internal_port'],
  properties: mappingBodyProperties,
  additionalProperties: false,
} as const;

export const updateMappingBodySchema = {
  type: 'object',
  minProperties: 1,
  properties: mappingBodyProperties,
  additionalProperties: false,
} as const;

const limitSchema = {
  type: 'object',
  required: ['requests_per_minute'],
  properties: {
    requests_per_minute: { type: 'integer', minimum: 1, maximum: 10_000_000 },
    burst_size: { type: 'integer', minimum: 1, maximum: 10_000_000 },
  },
  additionalProperties: false,
} as const;

/** The server-wide access-control document of `PUT /proxy/access` (replaces the stored one). */
export const serverAccessBodySchema = {
  type: 'object',
  properties: {
    default_authentication: { type: 'boolean' },
    session_timeout_minutes: { type: 'number', minimum: 0.05, maximum: 525_600, description: 'Browser session lifetime in minutes (fractions allowed: 0.5 = 30 s); default 480' },
    max_concurrent_sessions: { type: 'integer', minimum: 1, maximum: 100_000 },
    ip_whitelist: ipListSchema,
    blocked_ips: ipListSchema,
    rate_limiting: {
      type: 'object',
      properties: { global_limit: limitSchema, per_user_limit: limitSchema },
      additionalProperties: false,
    },
    security_headers: securityHeadersSchema,
    cors: corsSchema,
    compression: compressionSchema,
    // The per-mapping names, accepted server-wide as the defaults of every mapping
    // (SPEC: these fields apply "per mapping and server-wide").
    authentication_required: { type: 'boolean', description: 'Same as default_authentication' },
    allowed_users: userListSchema,
    rate_limit: { ...rateLimitSchema, description: 'Same as rate_limiting.per_user_limit' },
  },
  additionalProperties: false,
} as const;

// ---- responses ----

const openObject = { type: 'object', additionalProperties: true } as const;
const nullableOpenObject = { type: ['object', 'null'], additionalProperties: true } as const;

const usageSchema = {
  type: 'object',
  description:
    'Counted by the relay, flushed to the store every 10 s and kept across restarts. unique_visitors is a HyperLogLog estimate (about 3 % error; near exact under ~2,500); a raw TCP connection or WebSocket counts as one request',
  properties: {
    total_connections: { type: 'integer' },
    total_requests: { type: 'integer' },
    unique_visitors: { type: 'integer' },
    last_accessed: { type: ['string', 'null'] },
    avg_response_time_ms: { type: ['number', 'null'] },
    bytes_in: { type: 'integer' },
    bytes_out: { type: 'integer' },
    open_connections: { type: 'integer', description: 'Raw TCP connections and WebSocket tunnels open now, plus HTTPS requests in flight' },
    open_requests: { type: 'integer', description: 'HTTPS requests in flight' },
  },
} as const;

export const mappingViewSchema = {
  type: 'object',
  required: ['id', 'internal_port', 'external_port', 'protocol', 'url', 'status', 'health_status', 'created_at', 'updated_at'],
  properties: {
    id: { type: 'string' },
    internal_port: { type: 'integer' },
    external_port: { type: 'integer' },
    protocol: { type: 'string', enum: ['tcp', 'udp'] },
    description: { type: 'string' },
    name: { type: ['string', 'null'] },
    http: { type: 'boolean' },
    source: { type: 'string', enum: ['api', 'agent'], description: 'agent = declared in agent.yaml: only description, health_check and access_control can be changed here' },
    group: { type: ['string', 'null'], description: 'Replica group (docs/replicas.md)' },
    url: { type: 'string', description: 'First HTTPS URL for http mappings, else the raw tcp://host:port (udp://…)' },
    urls: {
      type: 'object',
      properties: { raw: { type: 'string' }, https: { type: 'array', items: { type: 'string' } } },
    },
    status: { type: 'string', enum: ['active', 'inactive'], description: "active while the server's agent is connected" },
    health_status: { type: 'string', enum: ['healthy', 'unhealthy', 'unknown'] },
    health_check: nullableOpenObject,
    access_control: nullableOpenObject,
    usage_statistics: usageSchema,
    created_at: timestampSchema,
    updated_at: timestampSchema,
  },
} as const;

function withServerKey<P extends object>(key: ServerKey, properties: P) {
  return { [key]: { type: 'string' }, ...properties };
}

const sslSchema = {
  type: 'object',
  properties: {
    issuer: { type: ['string', 'null'] },
    subject: { type: ['string', 'null'] },
    subject_alt_names: { type: 'array', items: { type: 'string' } },
    valid_from: { type: ['string', 'null'] },
    valid_until: { type: ['string', 'null'] },
    fingerprint_sha256: { type: ['string', 'null'] },
    source: { type: 'string', enum: ['config', 'dev'] },
    status: { type: 'string', enum: ['valid', 'expired', 'not_yet_valid', 'unavailable'] },
    error: { type: 'string' },
  },
} as const;

const accessLogSchema = {
  type: 'object',
  properties: {
    timestamp: timestampSchema,
    client_ip: { type: 'string' },
    user: { type: ['string', 'null'] },
    method: { type: 'string' },
    path: { type: 'string' },
    status_code: { type: 'integer' },
    response_time_ms: { type: 'number' },
    user_agent: { type: ['string', 'null'] },
    mapping_id: { type: 'string' },
  },
} as const;

export function proxyViewSchema(key: ServerKey) {
  return {
    type: 'object',
    required: [key, 'proxy_url', 'proxy_status', 'port_mappings', 'access_control', 'network_configuration'],
    properties: withServerKey(key, {
      proxy_url: { type: 'string', description: "The relay's HTTPS proxy endpoint; each http mapping has its own host (port_mappings[].urls.https)" },
      proxy_status: { type: 'string', enum: ['active', 'inactive', 'disabled'], description: 'disabled = PUT /proxy {enabled:false}; inactive = agent not connected' },
      proxy_enabled: { type: 'boolean' },
      allowed_ips: { type: 'array', items: { type: 'string' } },
      public_hostname: { type: 'string' },
      ports: { type: 'array', items: { type: 'integer' }, description: "The server's public port block" },
      identity_ports: { type: 'array', items: { type: 'integer' }, description: 'Block ports no mapping took: public P forwards to internal P' },
      ssl_certificate: sslSchema,
      port_mappings: { type: 'array', items: mappingViewSchema },
      access_control: openObject,
      network_configuration: openObject,
      access_logs: { type: 'array', items: accessLogSchema },
    }),
  } as const;
}

export function proxyResponse(key: ServerKey) {
  return okEnvelope(proxyViewSchema(key), {
    last_updated: timestampSchema,
    total_port_mappings: { type: 'integer' },
    active_port_mappings: { type: 'integer' },
    proxy_version: { type: 'string' },
  });
}

export function proxySettingsResponse(key: ServerKey) {
  return okEnvelope({
    type: 'object',
    required: [key, 'proxyUrl', 'enabled', 'allowedIps'],
    properties: withServerKey(key, {
      proxyUrl: { type: 'string' },
      enabled: { type: 'boolean' },
      allowedIps: { type: 'array', items: { type: 'string' } },
    }),
  });
}

export function mappingResponse(key: ServerKey) {
  return okEnvelope({
    ...mappingViewSchema,
    required: [...mappingViewSchema.required, key],
    properties: withServerKey(key, mappingViewSchema.properties),
  });
}

export function mappingDeletedResponse(key: ServerKey) {
  return okEnvelope({
    type: 'object',
    required: ['id', 'deleted', key],
    properties: withServerKey(key, { id: { type: 'string' }, deleted: { type: 'boolean' } }),
  });
}

export function accessResponse(key: ServerKey) {
  return okEnvelope({
    type: 'object',
    required: [key, 'access_control'],
    properties: withServerKey(key, { access_control: openObject, updated_at: timestampSchema }),
  });
}
