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
}
