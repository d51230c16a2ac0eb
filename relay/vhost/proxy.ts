/**
 * Request forwarding: Host -> route -> access control -> agent session, then
 * one ProxyExchange per request (exchange.ts: the request head serialised
 * here, a pooled mux stream speaking HTTP/1.1 to the app, bodies forwarded
 * with backpressure both ways, idle timeouts by traffic class). Upgrades
 * (WebSocket) become raw byte tunnels.
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import type { RelayConfig } from '../../shared/config/types.js';
import type { Logger } from '../../shared/logging.js';
import { PorticoError, errorCodeFromWire, isPorticoError } from '../../shared/errors.js';
import { normalizeAddress } from '../../shared/util/net.js';
import { splice } from '../../shared/util/splice.js';
import { StreamKind } from '../../proto/index.js';
import type { SessionRegistry } from '../sessions/registry.js';
import type { AgentSession } from '../sessions/agent-session.js';
import type { HostRouter, Route } from './router.js';
import { forwardRequestHeaders, requestFraming, serializeRequestHead } from './headers.js';
import { classifyRequest, idleTimeoutMs } from './timeouts.js';
import { proxyErrors, rawErrorResponse, sendError, type ProxyError } from './errors.js';
import { MAX_RESPONSE_HEADER_BYTES, OPEN_TIMEOUT_MS, type UpstreamPool } from './upstream-pool.js';
import { awaitUpgradeAnswer } from './upgrade-answer.js';
import { ProxyExchange, type ExchangeContext } from './exchange.js';
import { DirectExchange, type DirectContext, type DirectOwner } from './direct-exchange.js';
import type { RequestHead } from './request-head.js';
import { AccessGate } from '../access/gate.js';
import type { UserDirectory } from '../access/auth.js';
import type { Observability } from '../observability.js';
import type { RequestObs } from '../stats/usage.js';

export interface ProxyDeps {
  config: RelayConfig;
  logger: Logger;
  router: HostRouter;
  registry: SessionRegistry;
  /** Pooled upstream streams to agents. */
  pool: UpstreamPool;
  /** True once the relay is draining. */
  closing(): boolean;
  /** Endpoint users (the store) for access control; without it no login succeeds. */
  users?: UserDirectory;
  /** Health gate, replica groups, usage statistics and access logs (relay/observability.ts). */
  obs?: Observability;
}

interface Target {
  route: Route;
  session: AgentSession;
  clientIp: string;
  /** Set by access control: the authenticated user, or null (undefined = not decided yet). */
  user?: string | null;
}

const NO_USERS: UserDirectory = { findUser: async () => undefined, findUserKeyByHash: async () => undefined };

/** Counters for the bench, the API and tests. */
export interface ProxyStats {
  requests: number;
  upgrades: number;
  errors: number;
  timeouts: number;
}

export class HttpProxy {
  readonly stats: ProxyStats = { requests: 0, upgrades: 0, errors: 0, timeouts: 0 };
  /** Client sockets taken over by an upgrade (closed on hard stop). */
  readonly tunnels = new Set<Duplex>();
  private readonly timeouts: RelayConfig['https']['timeouts'];
  private readonly rewriteHost: boolean;
  /** Access control (relay/access): IP rules, sign-in, rate limits, security headers, CORS, compression. */
  readonly access: AccessGate;
  private readonly exchangeContext: ExchangeContext;
  private readonly directContext: DirectContext;

  constructor(private readonly deps: ProxyDeps) {
    this.timeouts = deps.config.https.timeouts;
    this.rewriteHost = deps.config.https.hostHeader === 'rewrite';
    this.access = new AccessGate({ users: deps.users ?? NO_USERS, logger: deps.logger.child({ part: 'access' }) });
    this.exchangeContext = {
      pool: deps.pool,
      timeouts: this.timeouts,
      stats: this.stats,
      access: this.access,
      upstreamError: (err, route, session) => this.upstreamError(err, route, session),
      logFailure: (route, e, err) => deps.logger.debug({ server: route.serverId, port: route.internalPort, code: e.code, err: err.message }, 'upstream request failed'),
    };
    const ec = this.exchangeContext;
    this.directContext = { pool: ec.pool, timeouts: ec.timeouts, stats: this.stats, rewriteHost: this.rewriteHost, usage: deps.obs?.usage ?? null, upstreamError: ec.upstreamError, logFailure: ec.logFailure };
  }

  /**
   * The fast front's direct path (direct-exchange.ts) for a plain request to
   * a route without access rules whose agent is here; null sends it down the
   * general path (onRequest), which answers the rest: draining, proxy off,
   * agent offline.
   */
  readonly direct = (owner: DirectOwner, head: RequestHead, route: Route): DirectExchange | null => {
    if (this.deps.closing() || !route.proxyEnabled || route.access !== null) return null;
    const session = this.deps.registry.get(route.serverId, route.mappingId);
    if (!session) return null;
    const usage = this.deps.obs ? this.deps.obs.usage.usage(route.serverId, route.mappingId) : null;
    return new DirectExchange(owner, this.directContext, head, { route, session, usage }, owner.clientIp);
  };

  // ---- routing (shared by requests and upgrades) ----

  /** Finds where a request goes, or why it cannot. Sync when the host is in the table. */
  private target(req: http.IncomingMessage, done: (t: Target | ProxyError) => void): void {
    if (this.deps.closing()) return done(proxyErrors.shuttingDown());
    const route = this.deps.router.lookup(req.headers.host);
    if (route) return done(this.check(req, route));
    // Replica group host: the next eligible member's route, or 503 when none (relay/observability.ts).
    const member = this.deps.obs?.groupRoute(req.headers.host);
    if (member) return done('status' in member ? member : this.check(req, member));
    this.deps.router.resolve(req.headers.host).then(
      (r) => done(r ? this.check(req, r) : proxyErrors.unknownHost(req.headers.host ?? '', this.deps.config.domain)),
      (err: Error) => {
        this.deps.logger.error({ err: err.message }, 'host lookup failed');
        done(proxyErrors.upstreamFailed('the relay could not look up this host; retry shortly'));
      },
    );
  }

  private check(req: http.IncomingMessage, route: Route): Target | ProxyError {
    if (!route.proxyEnabled) return proxyErrors.proxyDisabled(route.serverId);
    const clientIp = normalizeAddress(req.socket.remoteAddress);
    // Access control: IP rules on the real peer address, never X-Forwarded-For (relay/access/gate.ts).
    if (route.access !== null) {
      const refused = this.access.checkIp(route.serverId, route.access, clientIp);
      if (refused) return refused;
    }
    // Replica agents of one server: round-robin, preferring those whose check of this mapping passes.
    const session = this.deps.registry.get(route.serverId, route.mappingId);
    if (!session) return proxyErrors.agentOffline(route.serverId);
    // Health chooses between replicas only (group hosts, relay/observability.ts); a lone
    // mapping's own host is always tried, so the client gets the real answer or error.
    return { route, session, clientIp };
  }

  private headers(req: http.IncomingMessage, t: Target, upgrade: string | null): string[] {
    const headers = forwardRequestHeaders(req.rawHeaders, {
      clientIp: t.clientIp,
      host: req.headers.host ?? '',
      rewriteHost: this.rewriteHost ? `localhost:${t.route.internalPort}` : null,
      upgrade,
    });
    // Access control: the relay's credentials (Authorization, session cookie) never reach the app.
    if (t.route.access !== null) this.access.scrubRequestHeaders(headers, t.route.access, t.user ?? null);
    return headers;
  }

  // ---- plain requests ----

  readonly onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    this.stats.requests++;
    const obs = this.deps.obs?.beginRequest(req, res);
    this.target(req, (t) => {
      if ('status' in t) {
        this.stats.errors++;
        sendError(req, res, t);
        return;
      }
      this.deps.obs?.routed(obs, t.route);
      // Access control: CORS preflight, sign-in, rate limits (relay/access/gate.ts); it answers refusals itself.
      if (t.route.access !== null) {
        this.access.request(req, res, t.route.access, t.clientIp, (a) => {
          t.user = a.user;
          this.forward(req, res, t, obs);
        });
        return;
      }
      this.forward(req, res, t, obs);
    });
  };

  private forward(req: http.IncomingMessage, res: http.ServerResponse, t: Target, obs?: RequestObs): void {
    const method = req.method ?? 'GET';
    const contentLength = req.headers['content-length'];
    const chunked = contentLength === undefined && req.headers['transfer-encoding'] !== undefined;
    const body = chunked ? 'chunked' : contentLength !== undefined && contentLength !== '0' ? 'length' : 'none';
    const head = serializeRequestHead(method, originForm(req.url), this.headers(req, t, null), requestFraming(method, contentLength, chunked));
    new ProxyExchange(this.exchangeContext, req, res, {
      route: t.route,
      session: t.session,
      clientIp: t.clientIp,
      head,
      body,
      cls: classifyRequest(req.url ?? '/', req.headers),
      obs,
    }).start();
  }

  private upstreamError(err: NodeJS.ErrnoException, route: Route, session: AgentSession): ProxyError {
    const where = `port ${route.internalPort} inside ${route.serverId}`;
    if (isPorticoError(err)) {
      switch (err.code) {
        case 'NOTHING_LISTENING':
          return proxyErrors.nothingListening(err.message);
        case 'AGENT_OFFLINE':
        case 'SHUTTING_DOWN':
          return proxyErrors.agentOffline(route.serverId);
        case 'TIMEOUT':
          return proxyErrors.upstreamFailed(`the agent of server ${route.serverId} did not open ${where} within ${OPEN_TIMEOUT_MS / 1000} s`);
        default:
          return proxyErrors.upstreamFailed(err.message);
      }
    }
    if (session.closed) return proxyErrors.agentOffline(route.serverId);
    if (typeof err.code === 'string' && err.code.startsWith('HPE_')) return proxyErrors.upstreamFailed(`the app on ${where} sent an invalid HTTP response (${err.code})`);
    return proxyErrors.upstreamFailed(`the app on ${where} closed the connection without answering`);
  }

  // ---- upgrades (WebSocket) ----

  readonly onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    this.stats.upgrades++;
    socket.on('error', () => undefined);
    this.tunnels.add(socket);
    socket.once('close', () => this.tunnels.delete(socket));
    const fail = (e: ProxyError) => {
      this.stats.errors++;
      if (!socket.destroyed) socket.end(rawErrorResponse(req.headers.accept, e));
    };
    const go = (t: Target | ProxyError): void => {
      if ('status' in t) return fail(t);
      // Access control: sign-in and rate limits apply to WebSocket upgrades too (relay/access/gate.ts).
      if (t.route.access !== null && t.user === undefined) {
        this.access.upgrade(req, t.route.access, t.clientIp, (err, a) => (err ? fail(err) : go({ ...t, user: a.user })));
        return;
      }
      const cls = classifyRequest(req.url ?? '/', req.headers);
      let opened;
      try {
        opened = t.session.open(
          { mappingId: t.route.mappingId, internalPort: t.route.internalPort, kind: StreamKind.HTTP, clientAddress: t.clientIp, clientPort: req.socket.remotePort ?? 0 },
          OPEN_TIMEOUT_MS,
        );
      } catch (err) {
        return fail(this.upstreamError(err as NodeJS.ErrnoException, t.route, t.session));
      }
      const { stream } = opened;
      stream.on('error', () => undefined);
      const onEarlyClose = () => stream.destroy();
      socket.once('close', onEarlyClose);
      opened.opened.then(
        (r) => {
          socket.off('close', onEarlyClose);
          if (socket.destroyed) return stream.destroy();
          if (!r.ok) {
            stream.destroy();
            return fail(this.upstreamError(new PorticoError(errorCodeFromWire(r.code ?? 0), r.message || 'the agent could not open the port'), t.route, t.session));
          }
          const upgrade = req.headers.upgrade ?? 'websocket';
          stream.write(serializeRequestHead(req.method ?? 'GET', originForm(req.url), this.headers(req, t, upgrade)));
          if (head.length > 0) stream.write(head);
          const idle = idleTimeoutMs(cls, this.timeouts);
          const s = socket as Duplex & { setTimeout?(ms: number, cb?: () => void): void; setNoDelay?(v: boolean): void };
          s.setNoDelay?.(true);
          if (idle > 0) s.setTimeout?.(idle, () => socket.destroy());
          else s.setTimeout?.(0);
          const onClientGone = () => stream.destroy();
          socket.once('close', onClientGone);
          // Only the app's 101 makes this a tunnel (upgrade-answer.ts); a refusal is relayed and the connection closed.
          awaitUpgradeAnswer(stream, socket, MAX_RESPONSE_HEADER_BYTES, (a) => {
            socket.off('close', onClientGone);
            if ('error' in a) {
              stream.destroy();
              return fail(this.upstreamError(a.error as NodeJS.ErrnoException, t.route, t.session));
            }
            if ('refused' in a || socket.destroyed) return;
            socket.write(a.upgraded);
            // Statistics: the tunnel counts as a connection; its bytes are read from splice's counters.
            const obs = this.deps.obs;
            let live: ReturnType<Observability['tunnelOpened']> | undefined;
            const counted = splice(socket, stream, obs ? () => live && obs.connectionClosed(live) : undefined);
            counted.bToA += a.upgraded.length;
            live = obs?.tunnelOpened(t.route, t.clientIp, counted);
          });
        },
        (err: Error) => {
          socket.off('close', onEarlyClose);
          stream.destroy();
          fail(this.upstreamError(err, t.route, t.session));
        },
      );
    };
    this.target(req, go);
  };
}

/**
 * The request target as the app gets it: origin-form (`/path?query`). An absolute-form target
 * (`GET http://other-host/path`) would name an authority other than the Host the relay routed by.
 */
export function originForm(url: string | undefined): string {
  if (!url) return '/';
  if (url.charCodeAt(0) === 0x2f) return url; // '/': the usual case
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(url);
  if (!m) return url; // '*' (OPTIONS) and other forms pass as sent
  const rest = url.slice(m[0].length);
  return rest === '' || rest.charCodeAt(0) !== 0x2f ? `/${rest}` : rest;
}
