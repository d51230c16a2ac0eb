/**
 * Compiles the stored access-control documents into what the hot path reads:
 * once per route (HTTPS) or per published mapping (raw TCP/UDP), never per
 * request. A route with nothing configured compiles to null, and the proxy
 * then skips every access step with one null check.
 *
 * Inputs: the server's `allowedIps` (PUT /proxy; HTTPS only) and `access`
 * document (PUT /proxy/access), and the mapping's `access_control`.
 * Precedence, field by field:
 *   - IP: server `ip_whitelist`, mapping `ip_whitelist` and (HTTPS) `allowedIps`
 *     must all pass; server and mapping `blocked_ips` both refuse.
 *   - Authentication: mapping `public_access: true` -> off; else mapping
 *     `authentication_required`, else server `default_authentication` (the API
 *     stores a server-wide `authentication_required` under that name).
 *   - `allowed_users`, `session_timeout_minutes`, `max_concurrent_sessions`,
 *     `cors`, `security_headers`, `compression`: the mapping's value, else the
 *     server's (`allowed_users` absent everywhere = every user of the owner).
 *   - Rate limits: server `rate_limiting.global_limit` -> one bucket per
 *     mapping shared by all clients; mapping `rate_limit`, else server
 *     `rate_limiting.per_user_limit` (the API stores a server-wide `rate_limit`
 *     there) -> one bucket per client (the authenticated user, else the IP)
 *     per mapping.
 */
import type { ServerRecord } from '../store/store.js';
import { compileIpPolicy, type IpPolicy } from './ip-rules.js';
import { limitFrom, type Limit } from './rate-limit.js';
import { compileCors, type CorsPolicy } from './cors.js';
import { compileSecurityHeaders, type SecurityHeaders } from './security-headers.js';
import { compileCompression, type CompressionPolicy } from './compress.js';

export const DEFAULT_SESSION_TIMEOUT_MINUTES = 480;

export interface AuthPolicy {
  owner: string;
  serverId: string;
  mappingId: string;
  /** Lowercase usernames; null = any user of the owner. */
  allowedUsers: Set<string> | null;
  sessionTtlMs: number;
  maxSessions: number | null;
}

export interface RatePolicy {
  mappingId: string;
  global: Limit | null;
  perClient: Limit | null;
}

export interface HttpAccess {
  ip: IpPolicy | null;
  auth: AuthPolicy | null;
  rate: RatePolicy | null;
  cors: CorsPolicy | null;
  securityHeaders: SecurityHeaders | null;
  compression: CompressionPolicy | null;
}

export interface MappingAccessInput {
  id: string;
  accessControl: Record<string, unknown> | null;
}

type Doc = Record<string, unknown>;

function strList(v: unknown): string[] | undefined {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined;
}

function posNumber(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : null;
}

/** IP rules of a raw (TCP/UDP) port: server-wide and per-mapping lists, not the proxy's allowedIps. */
export function compileRawIpPolicy(server: Pick<ServerRecord, 'access'>, mapping: { accessControl: Record<string, unknown> | null }, onBad?: (e: string) => void): IpPolicy | null {
  const s: Doc = server.access ?? {};
  const m: Doc = mapping.accessControl ?? {};
  return compileIpPolicy(
    [
      { scope: 'server', entries: strList(s.ip_whitelist) },
      { scope: 'mapping', entries: strList(m.ip_whitelist) },
    ],
    [strList(s.blocked_ips), strList(m.blocked_ips)],
    onBad,
  );
}

export function compileHttpAccess(
  server: Pick<ServerRecord, 'id' | 'owner' | 'allowedIps' | 'access'>,
  mapping: MappingAccessInput,
  warn?: (field: string, detail: string) => void,
): HttpAccess | null {
  const s: Doc = server.access ?? {};
  const m: Doc = mapping.accessControl ?? {};
  const ip = compileIpPolicy(
    [
      { scope: 'proxy', entries: server.allowedIps },
      { scope: 'server', entries: strList(s.ip_whitelist) },
      { scope: 'mapping', entries: strList(m.ip_whitelist) },
    ],
    [strList(s.blocked_ips), strList(m.blocked_ips)],
    (e) => warn?.('ip list', e),
  );

  let authOn: boolean;
  if (m.public_access === true) authOn = false;
  else if (typeof m.authentication_required === 'boolean') authOn = m.authentication_required;
  else authOn = s.default_authentication === true;
  let auth: AuthPolicy | null = null;
  if (authOn) {
    // An empty list is no rule (as for IP lists): it neither opens nor narrows the server's list.
    const own = strList(m.allowed_users);
    const users = own && own.length > 0 ? own : strList(s.allowed_users);
    const minutes = posNumber(m.session_timeout_minutes) ?? posNumber(s.session_timeout_minutes) ?? DEFAULT_SESSION_TIMEOUT_MINUTES;
    const max = posNumber(m.max_concurrent_sessions) ?? posNumber(s.max_concurrent_sessions);
    auth = {
      owner: server.owner,
      serverId: server.id,
      mappingId: mapping.id,
      allowedUsers: users && users.length > 0 ? new Set(users.map((u) => u.toLowerCase())) : null,
      sessionTtlMs: Math.round(minutes * 60_000),
      maxSessions: max === null ? null : Math.floor(max),
    };
  }

  const rl = (s.rate_limiting ?? {}) as Doc;
  const global = limitFrom(rl.global_limit);
  const perClient = limitFrom(m.rate_limit) ?? limitFrom(rl.per_user_limit);
  const rate: RatePolicy | null = global || perClient ? { mappingId: mapping.id, global, perClient } : null;

  const cors = compileCors(m.cors ?? s.cors);
  const securityHeaders = compileSecurityHeaders(m.security_headers ?? s.security_headers, (f) => warn?.(`security_headers.${f}`, 'not valid header text; ignored'));
  const compression = compileCompression(m.compression ?? s.compression);

  if (!ip && !auth && !rate && !cors && !securityHeaders && !compression) return null;
  return { ip, auth, rate, cors, securityHeaders, compression };
}
