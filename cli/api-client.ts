/** A small client for the management API over global fetch, unwrapping the response envelope. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const DEFAULT_API_URL = 'http://127.0.0.1:7400';
/** The dev data dir's admin key, relative to the working directory. */
export const DEV_ADMIN_KEY_FILE = join('.portico', 'admin.key');

/** An API failure (or a failure to reach it), with the API's error code. */
export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  readonly details: Record<string, unknown>;
  constructor(code: string, message: string, status: number, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.status = status;
    this.details = details;
  }
}

export interface ApiResult<T> {
  data: T;
  meta: Record<string, unknown>;
}

export interface ApiClientOptions {
  /** Base URL, with or without a trailing `/v1`. */
  baseUrl: string;
  apiKey?: string;
  /** Per-request timeout (ms). */
  timeoutMs?: number;
}

export interface ServerView {
  id: string;
  owner: string;
  ports: number[];
  udp: boolean;
  proxy_enabled?: boolean;
  created_at: string;
  updated_at?: string;
  online?: boolean;
  agent_version?: string | null;
  connected_since?: string | null;
}

export interface MappingSummary {
  id: string;
  internal_port: number;
  external_port: number;
  protocol: 'tcp' | 'udp';
  name: string | null;
  http: boolean;
  description: string;
  source: 'api' | 'agent';
}

export interface ServerDetail extends ServerView {
  remote_address?: string | null;
  public_hostname?: string;
  mappings: MappingSummary[];
}

export interface CreatedServer extends ServerView {
  agent_token: string;
}

export interface CreateServerInput {
  id?: string;
  owner?: string;
  ports?: number;
  udp?: boolean;
}

/** Resolves `--api`/`--api-key` against env PORTICO_API/PORTICO_API_KEY and the dev admin key file. */
export function resolveApiOptions(
  flags: { api?: string; apiKey?: string },
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
): ApiClientOptions {
  const baseUrl = flags.api ?? (env.PORTICO_API || DEFAULT_API_URL);
  let apiKey = flags.apiKey ?? (env.PORTICO_API_KEY || undefined);
  if (apiKey === undefined) {
    try {
      apiKey = readFileSync(join(cwd, DEV_ADMIN_KEY_FILE), 'utf8').trim() || undefined;
    } catch {
      // no dev key file: the API will answer 401 with a clear message
    }
  }
  return apiKey === undefined ? { baseUrl } : { baseUrl, apiKey };
}

export class ApiClient {
  private readonly base: string;
  private readonly apiKey: string | undefined;
  private readonly timeoutMs: number;

  constructor(opts: ApiClientOptions) {
    this.base = opts.baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '');
    this.apiKey = opts.apiKey;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /** Calls `method path` (path starts with /v1) and returns the envelope's data and meta, or throws ApiError. */
  async request<T>(method: string, path: string, body?: unknown): Promise<ApiResult<T>> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.apiKey !== undefined) headers.authorization = `Bearer ${this.apiKey}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const url = this.base + path;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
      throw new ApiError('API_UNREACHABLE', `cannot reach the API at ${this.base} (${cause}); is the relay running? (--api URL or PORTICO_API)`, 0);
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const env = parsed as { success?: boolean; data?: T; meta?: Record<string, unknown>; error?: { code?: string; message?: string; details?: Record<string, unknown> } } | undefined;
    if (res.ok && env?.success === true) return { data: env.data as T, meta: env.meta ?? {} };
    if (env?.success === false && env.error) {
      throw new ApiError(env.error.code ?? 'INTERNAL', env.error.message ?? `HTTP ${res.status}`, res.status, env.error.details ?? {});
    }
    throw new ApiError('BAD_RESPONSE', `unexpected HTTP ${res.status} from ${method} ${url}`, res.status);
  }

  createServer(input: CreateServerInput): Promise<ApiResult<CreatedServer>> {
    return this.request('POST', '/v1/servers', input);
  }

  listServers(): Promise<ApiResult<ServerView[]>> {
    return this.request('GET', '/v1/servers');
  }

  getServer(id: string): Promise<ApiResult<ServerDetail>> {
    return this.request('GET', `/v1/servers/${encodeURIComponent(id)}`);
  }

  deleteServer(id: string): Promise<ApiResult<{ id: string; deleted: boolean }>> {
    return this.request('DELETE', `/v1/servers/${encodeURIComponent(id)}`);
  }

  setUdp(id: string, enabled: boolean): Promise<ApiResult<ServerView>> {
    return this.request('PUT', `/v1/servers/${encodeURIComponent(id)}/udp`, { enabled });
  }

  rotateToken(id: string): Promise<ApiResult<{ id: string; agent_token: string }>> {
    return this.request('POST', `/v1/servers/${encodeURIComponent(id)}/token`);
  }

  // ---- proxy and port mappings ----

  getProxy(serverId: string, include: ProxyIncludes = {}): Promise<ApiResult<ProxyView>> {
    const q = new URLSearchParams();
    if (include.health) q.set('include_health', 'true');
    if (include.accessLogs) q.set('include_access_logs', 'true');
    if (include.sslInfo) q.set('include_ssl_info', 'true');
    const qs = q.toString();
    return this.request('GET', proxyPath(serverId) + (qs ? `?${qs}` : ''));
  }

  setProxy(serverId: string, settings: ProxySettings): Promise<ApiResult<ProxySettingsView>> {
    return this.request('PUT', proxyPath(serverId), settings);
  }

  createMapping(serverId: string, input: MappingInput & { internal_port: number }): Promise<ApiResult<PortMappingView>> {
    return this.request('POST', `${proxyPath(serverId)}/ports`, input);
  }

  updateMapping(serverId: string, portId: string, patch: MappingInput): Promise<ApiResult<PortMappingView>> {
    return this.request('PUT', `${proxyPath(serverId)}/ports/${encodeURIComponent(portId)}`, patch);
  }

  deleteMapping(serverId: string, portId: string): Promise<ApiResult<{ id: string; deleted: boolean }>> {
    return this.request('DELETE', `${proxyPath(serverId)}/ports/${encodeURIComponent(portId)}`);
  }

  setAccess(serverId: string, doc: Record<string, unknown>): Promise<ApiResult<{ access_control: Record<string, unknown>; updated_at?: string }>> {
    return this.request('PUT', `${proxyPath(serverId)}/access`, doc);
  }
}

// ---- proxy and port mappings (/v1/servers/{id}/proxy…) ----

export interface PortMappingView {
  server_id?: string;
  id: string;
  internal_port: number;
  external_port: number;
  protocol: 'tcp' | 'udp';
  description: string;
  name: string | null;
  http: boolean;
  source: 'api' | 'agent';
  /** First HTTPS URL for http mappings, else the raw tcp://host:port. */
  url: string;
  urls: { raw: string; https: string[] };
  status: 'active' | 'inactive';
  health_status: 'healthy' | 'unhealthy' | 'unknown';
  health_check: Record<string, unknown> | null;
  access_control: Record<string, unknown> | null;
  usage_statistics: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}

export interface ProxyView {
  server_id?: string;
  cluster_id?: string;
  proxy_url: string;
  proxy_status: 'active' | 'inactive' | 'disabled';
  proxy_enabled: boolean;
  allowed_ips: string[];
  public_hostname: string;
  ports: number[];
  identity_ports: number[];
  port_mappings: PortMappingView[];
  access_control: Record<string, unknown>;
  network_configuration: Record<string, unknown>;
  ssl_certificate?: Record<string, unknown>;
  access_logs?: Record<string, unknown>[];
}

export interface MappingInput {
  internal_port?: number;
  external_port?: number;
  protocol?: 'tcp' | 'udp';
  description?: string;
  name?: string | null;
  http?: boolean;
  health_check?: Record<string, unknown> | null;
  access_control?: Record<string, unknown> | null;
}

export interface ProxyIncludes {
  health?: boolean;
  accessLogs?: boolean;
  sslInfo?: boolean;
}

export interface ProxySettings {
  enabled?: boolean;
  allowedIps?: string[];
}

export interface ProxySettingsView {
  proxyUrl: string;
  enabled: boolean;
  allowedIps: string[];
}

function proxyPath(serverId: string): string {
  return `/v1/servers/${encodeURIComponent(serverId)}/proxy`;
}
