/** The answers access control gives (rendered as JSON or HTML by relay/vhost/errors.ts). */
import type { ProxyError } from '../vhost/errors.js';
import type { IpVerdict, ListScope } from './ip-rules.js';

const scopeText: Record<ListScope, string> = {
  proxy: 'allowlist',
  server: 'ip_whitelist',
  mapping: 'ip_whitelist of this endpoint',
};

export const refusals = {
  ip: (serverId: string, ip: string, v: Exclude<IpVerdict, { ok: true }>): ProxyError =>
    v.reason === 'blocked'
      ? { status: 403, code: 'FORBIDDEN', message: `your address ${ip} is in the blocked_ips of this endpoint (server ${serverId} or its mapping)` }
      : {
          status: 403,
          code: 'FORBIDDEN',
          message:
            v.scope === 'mapping'
              ? `your address ${ip} is not in the ${scopeText.mapping}`
              : `your address ${ip} is not in the ${scopeText[v.scope as ListScope]} of server ${serverId}`,
        },
  unauthenticated: (message: string, challenge: string): ProxyError => ({
    status: 401,
    code: 'UNAUTHORIZED',
    message,
    hint: 'Send Authorization: Bearer <user API key> (POST /v1/users/{id}/keys, or the owner’s or admin’s management API key) or Basic credentials of a user of this server’s owner, or sign in with a browser.',
    headers: { 'www-authenticate': challenge },
  }),
  userNotAllowed: (username: string): ProxyError => ({
    status: 403,
    code: 'FORBIDDEN',
    message: `user ${username} is not in the allowed_users of this endpoint`,
  }),
  tooManySessions: (username: string, max: number): ProxyError => ({
    status: 403,
    code: 'FORBIDDEN',
    message: `user ${username} already has ${max} active sessions on this server (max_concurrent_sessions); sign out elsewhere or wait until one expires`,
  }),
  rateLimited: (retryAfterMs: number, what: string): ProxyError => {
    const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
    return {
      status: 429,
      code: 'RATE_LIMITED',
      message: `too many requests (${what}); retry in ${seconds} s`,
      headers: { 'retry-after': String(seconds) },
    };
  },
  busy: (): ProxyError => ({
    status: 429,
    code: 'RATE_LIMITED',
    message: 'too many sign-ins are being checked right now; retry in a moment',
    headers: { 'retry-after': '1' },
  }),
  badLoginRequest: (message: string): ProxyError => ({ status: 400, code: 'VALIDATION_FAILED', message }),
  crossSiteLogin: (): ProxyError => ({ status: 403, code: 'FORBIDDEN', message: 'sign-in forms must be posted from this site' }),
  corsRefused: (reason: string): ProxyError => ({ status: 403, code: 'FORBIDDEN', message: `CORS preflight refused: ${reason}` }),
};
