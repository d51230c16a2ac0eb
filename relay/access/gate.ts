/**
 * Access control of the HTTPS web proxy at run time: the one object the proxy
 * calls, holding the state the policies need (rate-limit buckets, sessions,
 * the verified-credential cache). Per request, in this order:
 *
 *   1. IP rules (checkIp, sync, in the proxy's routing step; also upgrades)
 *   2. CORS preflight answered from the config (never reaches the app)
 *   3. the sign-in portal (/.portico/login, /.portico/logout) on endpoints that need a login
 *   4. authentication: session cookie, Bearer user key or Basic; allowed_users
 *   5. rate limits: the client's bucket (user, else IP), then the mapping's global bucket
 *   6. (response) security headers, CORS headers, compression
 *
 * A route whose policy compiled to null never gets here (the proxy checks
 * `route.access` first), so endpoints without access control pay nothing.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../shared/logging.js';
import { metrics, setRequestUser } from '../metrics.js';
import { sendError, wantsHtml, type ProxyError } from '../vhost/errors.js';
import { Authenticator, parseAuthorization, sessionCookie, SESSION_COOKIE, withoutSessionCookie, type Identity, type UserDirectory } from './auth.js';
import { prepareCompression, type Encoding } from './compress.js';
import { answerPreflight, applyCors, isPreflight } from './cors.js';
import { removeHeader } from './header-list.js';
import { checkIp } from './ip-rules.js';
import { LOGIN_PAGE_HEADERS, LOGIN_PATH, LOGOUT_PATH, PORTAL_PREFIX, loginPage, safeNext } from './login-page.js';
import type { AuthPolicy, HttpAccess } from './policy.js';
import { RateLimiter, type Limit } from './rate-limit.js';
import { refusals } from './refusals.js';
import { applySecurityHeaders } from './security-headers.js';
import { SessionStore } from './sessions.js';

/** Failed sign-ins allowed per client IP: a burst of 20, then 10 a minute. */
export const FAILED_LOGIN_LIMIT: Limit = { requestsPerMinute: 10, burst: 20 };
const LOGIN_BODY_MAX = 8 * 1024;
const LOGIN_BODY_TIMEOUT_MS = 10_000;
const BASIC_CHALLENGE = 'Basic realm="portico", charset="UTF-8", Bearer realm="portico"';
/** Browsers pop a password dialog on a Basic challenge; they get the sign-in page and a Bearer-only challenge. */
const BROWSER_CHALLENGE = 'Bearer realm="portico"';

export interface GateDeps {
  users: UserDirectory;
  logger: Logger;
  now?: () => number;
}

/** What the proxy needs to know about a request that may go on. */
export interface Admitted {
  user: string | null;
}

export class AccessGate {
  readonly sessions = new SessionStore();
  readonly auth: Authenticator;
  readonly limiter = new RateLimiter();
  private readonly failures = new RateLimiter({ maxKeys: 20_000 });
  private readonly now: () => number;
  private readonly logger: Logger;

  constructor(deps: GateDeps) {
    this.now = deps.now ?? Date.now;
    this.logger = deps.logger;
    this.auth = new Authenticator(deps.users, { now: this.now });
  }

  // ---- 1. IP rules ----

  /** Null when the address may pass, else the refusal (counted). */
  checkIp(serverId: string, access: HttpAccess, clientIp: string): ProxyError | null {
    if (access.ip === null) return null;
    const v = checkIp(access.ip, clientIp);
    if (v.ok) return null;
    metrics.blocked.inc({ reason: v.reason === 'blocked' ? 'ip_blocked' : 'ip_not_allowed' });
    return refusals.ip(serverId, clientIp, v);
  }

  // ---- 2-5. a plain request ----

  /**
   * Decides a request that passed the IP rules. Calls `next` when it may be
   * forwarded; otherwise answers it (preflight, sign-in page, 401/403/429).
   */
  request(req: IncomingMessage, res: ServerResponse, access: HttpAccess, clientIp: string, next: (a: Admitted) => void): void {
    if (access.cors !== null && isPreflight(req.method, req.headers)) {
      const a = answerPreflight(access.cors, req.headers.origin!, req.headers['access-control-request-method'] as string, req.headers['access-control-request-headers']);
      if (a.status === 403) return sendError(req, res, { ...refusals.corsRefused(a.reason ?? 'not allowed'), headers: a.headers });
      res.writeHead(204, a.headers);
      res.end();
      return;
    }
    const auth = access.auth;
    if (auth === null) {
      if (this.limit(req, res, access, clientIp, null)) next({ user: null });
      return;
    }
    const url = req.url ?? '/';
    if (url.startsWith(PORTAL_PREFIX)) return this.portal(req, res, auth, clientIp, url);
    this.identify(req, auth, clientIp, (r) => {
      if ('status' in r) return this.refuse(req, res, r);
      if (this.limit(req, res, access, clientIp, r.username)) next({ user: r.username });
    });
  }

  // ---- upgrades (WebSocket): IP was checked by the router; login and limits here ----

  upgrade(req: IncomingMessage, access: HttpAccess, clientIp: string, done: (err: ProxyError | null, a: Admitted) => void): void {
    const fin = (user: string | null) => {
      const wait = this.takeRate(access, clientIp, user);
      done(wait, { user });
    };
    if (access.auth === null) return fin(null);
    this.identify(req, access.auth, clientIp, (r) => {
      if ('status' in r) return done(r, { user: null });
      fin(r.username);
    });
  }

  /** Removes the relay's credentials from the headers going to the app and says who the user is. */
  scrubRequestHeaders(headers: string[], access: HttpAccess, user: string | null): void {
    if (access.auth === null) return;
    removeHeader(headers, 'authorization');
    removeHeader(headers, 'x-portico-user');
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i]!.toLowerCase() !== 'cookie') continue;
      const rest = withoutSessionCookie(headers[i + 1]!);
      if (rest === null) {
        headers.splice(i, 2);
        i -= 2;
      } else headers[i + 1] = rest;
    }
    if (user !== null) headers.push('X-Portico-User', user);
  }

  // ---- 6. the response ----

  /** Adds security and CORS headers; returns the encoding to compress with, or null. */
  response(access: HttpAccess, req: IncomingMessage, status: number, raw: string[], streaming: boolean): Encoding | null {
    if (access.securityHeaders !== null) applySecurityHeaders(raw, access.securityHeaders);
    if (access.cors !== null) applyCors(raw, access.cors, req.headers.origin);
    if (access.compression === null) return null;
    return prepareCompression(
      access.compression,
      { method: req.method, acceptEncoding: req.headers['accept-encoding'], hasRange: req.headers.range !== undefined, streaming },
      status,
      raw,
    );
  }

  /** A user was deleted: forget cached verifications and end its sessions. */
  userDeleted(userId: string): void {
    this.auth.invalidate();
    this.sessions.retain((s) => s.userId !== userId);
  }

  // ---- internals ----

  /** Who is calling: identity, or the refusal to send. */
  private identify(req: IncomingMessage, auth: AuthPolicy, clientIp: string, done: (r: Identity | ProxyError) => void): void {
    const now = this.now();
    let expired = false;
    const cookie = sessionCookie(req.headers.cookie);
    if (cookie !== undefined) {
      const s = this.sessions.get(cookie, now);
      if (s !== undefined && s.mappingId === auth.mappingId) return done(this.allowed(req, auth, { userId: s.userId, username: s.username, owner: auth.owner, via: 'session' }));
      expired = true;
    }
    const cred = parseAuthorization(req.headers.authorization);
    if (cred === null) {
      metrics.blocked.inc({ reason: 'unauthenticated' });
      return done(this.challenge(req, expired ? 'your session has expired; sign in again' : 'this endpoint needs a login'));
    }
    const locked = this.failures.peek(clientIp, FAILED_LOGIN_LIMIT, now);
    if (locked > 0) {
      metrics.rateLimited.inc({ scope: 'login' });
      return done(refusals.rateLimited(locked, 'failed sign-ins from your address'));
    }
    this.auth.verify(cred, auth.owner).then(
      (r) => {
        if (r === 'busy') return done(refusals.busy());
        if (r === 'invalid') return done(this.failed(req, clientIp, cred.kind === 'bearer' ? 'invalid API key' : 'wrong username or password'));
        done(this.allowed(req, auth, r));
      },
      (err: Error) => {
        this.logger.error({ err: err.message }, 'credential check failed');
        done({ status: 502, code: 'UPSTREAM_FAILED', message: 'the relay could not check your credentials; retry shortly' });
      },
    );
  }

  private allowed(req: IncomingMessage, auth: AuthPolicy, id: Identity): Identity | ProxyError {
    if (auth.allowedUsers !== null && id.admin !== true && !auth.allowedUsers.has(id.username.toLowerCase())) {
      metrics.blocked.inc({ reason: 'forbidden_user' });
      return refusals.userNotAllowed(id.username);
    }
    setRequestUser(req, id.username);
    return id;
  }

  /** A wrong credential: counted against the client's failure bucket. */
  private failed(req: IncomingMessage, clientIp: string, what: string): ProxyError {
    const wait = this.failures.take(clientIp, FAILED_LOGIN_LIMIT, this.now());
    metrics.blocked.inc({ reason: 'bad_credentials' });
    this.logger.info({ ip: clientIp, host: req.headers.host }, `endpoint sign-in failed: ${what}`);
    if (wait > 0) return refusals.rateLimited(wait, 'failed sign-ins from your address');
    return this.challenge(req, what);
  }

  private challenge(req: IncomingMessage, message: string): ProxyError {
    return refusals.unauthenticated(message, req.headers['sec-fetch-mode'] !== undefined || wantsHtml(req.headers.accept) ? BROWSER_CHALLENGE : BASIC_CHALLENGE);
  }

  /** Browser navigations get the sign-in page for a 401; everything else the error page/JSON. */
  private refuse(req: IncomingMessage, res: ServerResponse, err: ProxyError): void {
    if (err.status === 401 && (req.method === 'GET' || req.method === 'HEAD') && wantsHtml(req.headers.accept)) {
      const body = loginPage({ host: hostOf(req), next: safeNext(req.url), message: err.message === 'this endpoint needs a login' ? undefined : err.message });
      const headers: Record<string, string | string[]> = { ...LOGIN_PAGE_HEADERS, ...err.headers, 'content-length': String(Buffer.byteLength(body)) };
      if (sessionCookie(req.headers.cookie) !== undefined) headers['set-cookie'] = clearCookie();
      res.writeHead(401, headers);
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    sendError(req, res, err);
  }

  /** Takes from the client's and the mapping's buckets; answers 429 and returns false when empty. */
  private limit(req: IncomingMessage, res: ServerResponse, access: HttpAccess, clientIp: string, user: string | null): boolean {
    const err = this.takeRate(access, clientIp, user);
    if (err === null) return true;
    sendError(req, res, err);
    return false;
  }

  private takeRate(access: HttpAccess, clientIp: string, user: string | null): ProxyError | null {
    const r = access.rate;
    if (r === null) return null;
    const now = this.now();
    if (r.perClient !== null) {
      const key = user !== null ? `u|${r.mappingId}|${user.toLowerCase()}` : `i|${r.mappingId}|${clientIp}`;
      const wait = this.limiter.take(key, r.perClient, now);
      if (wait > 0) {
        metrics.rateLimited.inc({ scope: user !== null ? 'per_user' : 'per_ip' });
        return refusals.rateLimited(wait, user !== null ? `user ${user}` : `address ${clientIp}`);
      }
    }
    if (r.global !== null) {
      const wait = this.limiter.take(`g|${r.mappingId}`, r.global, now);
      if (wait > 0) {
        metrics.rateLimited.inc({ scope: 'global' });
        return refusals.rateLimited(wait, 'this endpoint, all clients');
      }
    }
    return null;
  }

  // ---- the sign-in portal ----

  private portal(req: IncomingMessage, res: ServerResponse, auth: AuthPolicy, clientIp: string, url: string): void {
    const path = url.split('?')[0];
    if (path === LOGOUT_PATH && (req.method === 'POST' || req.method === 'GET')) {
      const cookie = sessionCookie(req.headers.cookie);
      if (cookie !== undefined) this.sessions.delete(cookie);
      res.writeHead(303, { location: '/', 'set-cookie': clearCookie(), 'cache-control': 'no-store', 'content-length': '0' });
      res.end();
      return;
    }
    if (path === LOGIN_PATH && req.method === 'GET') {
      const next = safeNext(new URLSearchParams(url.slice(path.length + 1)).get('next'));
      const body = loginPage({ host: hostOf(req), next });
      res.writeHead(200, { ...LOGIN_PAGE_HEADERS, 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
      return;
    }
    if (path !== LOGIN_PATH || req.method !== 'POST') {
      return sendError(req, res, { status: 404, code: 'NOT_FOUND', message: `${path} is reserved by the relay's sign-in (only ${LOGIN_PATH} and ${LOGOUT_PATH} exist)` });
    }
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== 'null' && origin.toLowerCase() !== `https://${hostOf(req).toLowerCase()}`) {
      metrics.blocked.inc({ reason: 'cross_site_login' });
      return sendError(req, res, refusals.crossSiteLogin());
    }
    if (origin === 'null') return sendError(req, res, refusals.crossSiteLogin());
    readForm(req, (form) => {
      if (form === null) return sendError(req, res, refusals.badLoginRequest(`send username and password as application/x-www-form-urlencoded, at most ${LOGIN_BODY_MAX} bytes`));
      const username = form.get('username') ?? '';
      const password = form.get('password') ?? '';
      const next = safeNext(form.get('next'));
      const page = (status: number, message: string, extra: Record<string, string> = {}) => {
        const body = loginPage({ host: hostOf(req), next, message, username: /^[A-Za-z0-9._@-]{1,64}$/.test(username) ? username : '' });
        res.writeHead(status, { ...LOGIN_PAGE_HEADERS, ...extra, 'content-length': String(Buffer.byteLength(body)) });
        res.end(body);
      };
      if (!username || !password) return page(400, 'enter a username and a password');
      const now = this.now();
      const locked = this.failures.peek(clientIp, FAILED_LOGIN_LIMIT, now);
      if (locked > 0) {
        metrics.rateLimited.inc({ scope: 'login' });
        return page(429, refusals.rateLimited(locked, 'failed sign-ins').message, { 'retry-after': String(Math.ceil(locked / 1000)) });
      }
      this.auth.verify({ kind: 'basic', username, password }, auth.owner).then(
        (r) => {
          if (r === 'busy') return page(429, refusals.busy().message, { 'retry-after': '1' });
          if (r === 'invalid') {
            const err = this.failed(req, clientIp, 'wrong username or password');
            return page(err.status, err.message, err.headers ?? {});
          }
          const ok = this.allowed(req, auth, r);
          if ('status' in ok) return page(ok.status, ok.message);
          const created = this.sessions.create({ serverId: auth.serverId, mappingId: auth.mappingId, userId: r.userId, username: r.username }, auth.sessionTtlMs, auth.maxSessions, this.now());
          if (!created.ok) {
            metrics.blocked.inc({ reason: 'sessions_exceeded' });
            const err = created.reason === 'user_limit' ? refusals.tooManySessions(r.username, auth.maxSessions ?? 0) : refusals.busy();
            return page(err.status, err.message);
          }
          this.logger.info({ user: r.username, server: auth.serverId, mapping: auth.mappingId, ip: clientIp }, 'endpoint sign-in');
          const maxAge = Math.max(1, Math.floor(auth.sessionTtlMs / 1000));
          res.writeHead(303, {
            location: next,
            'set-cookie': `${SESSION_COOKIE}=${created.session.id}; Path=/; Max-Age=${maxAge}; Secure; HttpOnly; SameSite=Lax`,
            'cache-control': 'no-store',
            'content-length': '0',
          });
          res.end();
        },
        (err: Error) => {
          this.logger.error({ err: err.message }, 'credential check failed');
          page(502, 'the relay could not check your credentials; retry shortly');
        },
      );
    });
  }
}

function hostOf(req: IncomingMessage): string {
  const h = req.headers.host ?? '';
  return /^[A-Za-z0-9.:[\]-]{1,300}$/.test(h) ? h : '';
}

function clearCookie(): string {
  return `${SESSION_COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax`;
}

/** Reads a small urlencoded form; null when too big, slow, or of another type. */
function readForm(req: IncomingMessage, done: (form: URLSearchParams | null) => void): void {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    req.resume();
    return done(null);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  const finish = (form: URLSearchParams | null) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    done(form);
  };
  const timer = setTimeout(() => {
    finish(null);
    req.destroy();
  }, LOGIN_BODY_TIMEOUT_MS);
  req.on('data', (c: Buffer) => {
    size += c.length;
    if (size > LOGIN_BODY_MAX) {
      finish(null);
      req.resume();
      return;
    }
    chunks.push(c);
  });
  req.on('end', () => finish(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
  req.on('error', () => finish(null));
  req.on('close', () => clearTimeout(timer));
}
