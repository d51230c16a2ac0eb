/**
 * CORS from the config (`cors {enabled, allowed_origins, allowed_methods,
 * allowed_headers}`, per mapping, else server-wide). When enabled the relay
 * owns CORS for the endpoint: preflights (OPTIONS + Origin +
 * Access-Control-Request-Method) are answered by the relay without reaching
 * the app — 204 with the allow headers when origin and method are allowed,
 * 403 otherwise — and responses to allowed origins get
 * Access-Control-Allow-Origin (the app's own Access-Control-* headers are
 * replaced). `*` in allowed_origins allows any origin without credentials;
 * listed origins are echoed with Access-Control-Allow-Credentials: true.
 * `*` in allowed_headers echoes what the preflight asks for. No I/O.
 */
import { addVary, removeHeaderPrefix } from './header-list.js';

export interface CorsPolicy {
  anyOrigin: boolean;
  origins: Set<string>;
  anyMethod: boolean;
  methods: Set<string>;
  methodsText: string;
  anyHeader: boolean;
  headers: Set<string>;
  headersText: string;
  maxAgeSeconds: number;
}

const DEFAULT_METHODS = ['GET', 'HEAD', 'POST'];
export const PREFLIGHT_MAX_AGE = 600;

/** Origins compare as lowercase scheme://host[:port] without a trailing slash. */
function normOrigin(o: string): string {
  return o.trim().toLowerCase().replace(/\/+$/, '');
}

export function compileCors(doc: unknown): CorsPolicy | null {
  if (!doc || typeof doc !== 'object') return null;
  const d = doc as { enabled?: unknown; allowed_origins?: unknown; allowed_methods?: unknown; allowed_headers?: unknown };
  if (d.enabled === false) return null;
  // The seed's documents set `enabled: true`; a cors object without `enabled` is taken as enabled.
  const strings = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && x.trim() !== '') : []);
  const origins = strings(d.allowed_origins).map(normOrigin);
  const methods = strings(d.allowed_methods).map((m) => m.toUpperCase());
  const headers = strings(d.allowed_headers).map((h) => h.trim().toLowerCase());
  const ms = methods.length > 0 ? methods : DEFAULT_METHODS;
  return {
    anyOrigin: origins.includes('*'),
    origins: new Set(origins.filter((o) => o !== '*')),
    anyMethod: ms.includes('*'),
    methods: new Set(ms),
    methodsText: ms.filter((m) => m !== '*').join(', ') || DEFAULT_METHODS.join(', '),
    anyHeader: headers.includes('*'),
    headers: new Set(headers.filter((h) => h !== '*')),
    headersText: headers.filter((h) => h !== '*').join(', '),
    maxAgeSeconds: PREFLIGHT_MAX_AGE,
  };
}

export function originAllowed(p: CorsPolicy, origin: string): boolean {
  return p.anyOrigin || p.origins.has(normOrigin(origin));
}

export function isPreflight(method: string | undefined, headers: { origin?: string | undefined; 'access-control-request-method'?: string | string[] | undefined }): boolean {
  return method === 'OPTIONS' && typeof headers.origin === 'string' && typeof headers['access-control-request-method'] === 'string';
}

export interface PreflightAnswer {
  status: 204 | 403;
  headers: Record<string, string>;
  /** Why it was refused (403 only). */
  reason?: string;
}

/** The relay's answer to a preflight. */
export function answerPreflight(p: CorsPolicy, origin: string, requestMethod: string, requestHeaders: string | undefined): PreflightAnswer {
  const base: Record<string, string> = { vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers', 'cache-control': 'no-store' };
  if (!originAllowed(p, origin)) return { status: 403, headers: base, reason: `origin ${origin} is not allowed` };
  const method = requestMethod.trim().toUpperCase();
  if (!p.anyMethod && !p.methods.has(method)) return { status: 403, headers: base, reason: `method ${method} is not allowed` };
  const asked = (requestHeaders ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
  if (!p.anyHeader) {
    const missing = asked.find((h) => !p.headers.has(h));
    if (missing !== undefined) return { status: 403, headers: base, reason: `header ${missing} is not allowed` };
  }
  const headers: Record<string, string> = {
    ...base,
    'access-control-allow-origin': p.anyOrigin ? '*' : origin,
    'access-control-allow-methods': p.anyMethod ? method : p.methodsText,
    'access-control-max-age': String(p.maxAgeSeconds),
  };
  const allowHeaders = p.anyHeader ? asked.join(', ') : p.headersText;
  if (allowHeaders) headers['access-control-allow-headers'] = allowHeaders;
  if (!p.anyOrigin) headers['access-control-allow-credentials'] = 'true';
  delete headers['cache-control'];
  return { status: 204, headers };
}

/** Response headers for an actual (non-preflight) request; `origin` undefined = not a CORS request. */
export function applyCors(raw: string[], p: CorsPolicy, origin: string | undefined): void {
  removeHeaderPrefix(raw, 'access-control-');
  addVary(raw, 'Origin');
  if (origin === undefined || !originAllowed(p, origin)) return;
  raw.push('Access-Control-Allow-Origin', p.anyOrigin ? '*' : origin);
  if (!p.anyOrigin) raw.push('Access-Control-Allow-Credentials', 'true');
}
