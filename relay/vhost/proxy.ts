/**
 * Request forwarding: Host -> route -> agent session -> a pooled mux stream
 * speaking HTTP/1.1 to the app. Bodies are piped both ways (backpressure from
 * the client's TCP window through the mux window to the app and back), never
 * buffered; idle timeouts follow the traffic class and are re-set when the
 * response headers arrive. Upgrades (WebSocket) become raw byte tunnels.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { RelayConfig } from '../../shared/config/types.js';
import type { Logger } from '../../shared/logging.js';
import { PorticoError, errorCodeFromWire, isPorticoError } from '../../shared/errors.js';
import { normalizeAddress } from '../../shared/util/net.js';
import { splice } from '../../shared/util/splice.js';
import { StreamKind } from '../../proto/index.js';
import type { SessionRegistry } from '../sessions/registry.js';
import type { AgentSession } from '../sessions/agent-session.js';
import { ipAllowed, type HostRouter, type Route } from './router.js';
import { forwardRequestHeaders, forwardResponseHeaders, serializeRequestHead } from './headers.js';
import { classifyRequest, classifyResponse, idleTimeoutMs, type TrafficClass } from './timeouts.js';
import { proxyErrors, rawErrorResponse, sendError, type ProxyError } from './errors.js';
import type { StreamAgent, UpstreamTarget } from './upstream-agent.js';

/** Largest response head accepted from an app. */
const MAX_RESPONSE_HEADER_BYTES = 64 * 1024;
const OPEN_TIMEOUT_MS = 15_000;
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

export interface ProxyDeps {
  config: RelayConfig;
  logger: Logger;
  router: HostRouter;
  registry: SessionRegistry;
  agent: StreamAgent;
  /** True once the relay is draining. */
  closing(): boolean;
}

interface Target {
  route: Route;
  session: AgentSession;
  clientIp: string;
}

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

  constructor(private readonly deps: ProxyDeps) {
    this.timeouts = deps.config.https.timeouts;
    this.rewriteHost = deps.config.https.hostHeader === 'rewrite';
  }

  // ---- routing (shared by requests and upgrades) ----

  /** Finds where a request goes, or why it cannot. Sync when the host is in the table. */
  private target(req: http.IncomingMessage, done: (t: Target | ProxyError) => void): void {
    if (this.deps.closing()) return done(proxyErrors.shuttingDown());
    const route = this.deps.router.lookup(req.headers.host);
    if (route) return done(this.check(req, route));
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
    if (!ipAllowed(route, clientIp)) return proxyErrors.ipNotAllowed(route.serverId, clientIp);
    const session = this.deps.registry.get(route.serverId);
    if (!session) return proxyErrors.agentOffline(route.serverId);
    return { route, session, clientIp };
  }

  private headers(req: http.IncomingMessage, t: Target, upgrade: string | null): string[] {
    return forwardRequestHeaders(req.rawHeaders, {
      clientIp: t.clientIp,
      host: req.headers.host ?? '',
      rewriteHost: this.rewriteHost ? `localhost:${t.route.internalPort}` : null,
      upgrade,
    });
  }

  // ---- plain requests ----

  readonly onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    this.stats.requests++;
    this.target(req, (t) => {
      if ('status' in t) {
        this.stats.errors++;
        sendError(req, res, t);
        return;
      }
      this.forward(req, res, t);
    });
  };

  private forward(req: http.IncomingMessage, res: http.ServerResponse, t: Target): void {
    let cls: TrafficClass = classifyRequest(req.url ?? '/', req.headers);
    const headers = this.headers(req, t, null);
    const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
    const retryable = !hasBody && IDEMPOTENT.has(req.method ?? '');
    let upstream: http.ClientRequest | null = null;
    let settled = false;

    res.setTimeout(idleTimeoutMs(cls, this.timeouts));
    res.on('timeout', () => {
      this.stats.timeouts++;
      upstream?.destroy();
      if (!res.headersSent) {
        sendError(req, res, proxyErrors.idleTimeout(t.route.internalPort, t.route.serverId, Math.round(idleTimeoutMs(cls, this.timeouts) / 1000), cls));
      } else res.destroy();
    });
    // The client went away (or the response was cut): drop the upstream stream, never pool it.
    res.once('close', () => {
      settled = true;
      if (upstream !== null && !res.writableFinished) upstream.destroy();
    });

    const send = (attempt: number) => {
      const upstreamTarget: UpstreamTarget = {
        session: t.session,
        mappingId: t.route.mappingId,
        internalPort: t.route.internalPort,
        clientAddress: t.clientIp,
        clientPort: req.socket.remotePort ?? 0,
      };
      const up = http.request({
        agent: this.deps.agent,
        method: req.method,
        path: req.url,
        headers: headers as unknown as http.OutgoingHttpHeaders,
        setHost: false,
        maxHeaderSize: MAX_RESPONSE_HEADER_BYTES,
        upstream: upstreamTarget,
      } as http.RequestOptions);
      upstream = up;
      up.on('response', (ures) => {
        if (settled) {
          ures.destroy();
          return;
        }
        const next = classifyResponse(cls, ures.statusCode ?? 0, ures.headers);
        if (next !== cls) {
          cls = next;
          res.setTimeout(idleTimeoutMs(cls, this.timeouts));
        }
        res.writeHead(ures.statusCode ?? 502, ures.statusMessage, forwardResponseHeaders(ures.rawHeaders));
        // Event streams: send the head now, not with the first event.
        if (cls === 'streaming') res.flushHeaders();
        // pipe() without its per-request listener bookkeeping: forward, pause on backpressure, resume on drain.
        ures.on('data', (chunk: Buffer) => {
          if (!res.write(chunk)) ures.pause();
        });
        res.on('drain', () => ures.resume());
        ures.on('end', () => res.end());
        ures.on('error', () => res.destroy());
        ures.on('aborted', () => res.destroy());
      });
      up.on('error', (err: NodeJS.ErrnoException) => {
        if (settled || res.headersSent) {
          res.destroy();
          return;
        }
        // A pooled stream the app closed just as we reused it: try once more on a fresh one.
        if (attempt === 0 && retryable && up.reusedSocket && (err.code === 'ECONNRESET' || err.message === 'socket hang up')) {
          send(1);
          return;
        }
        this.stats.errors++;
        const e = this.upstreamError(err, t);
        this.deps.logger.debug({ server: t.route.serverId, port: t.route.internalPort, code: e.code, err: err.message }, 'upstream request failed');
        sendError(req, res, e);
      });
      if (hasBody && attempt === 0) req.pipe(up);
      else up.end();
    };
    send(0);
  }

  private upstreamError(err: NodeJS.ErrnoException, t: Target): ProxyError {
    const where = `port ${t.route.internalPort} inside ${t.route.serverId}`;
    if (isPorticoError(err)) {
      switch (err.code) {
        case 'NOTHING_LISTENING':
          return proxyErrors.nothingListening(err.message);
        case 'AGENT_OFFLINE':
        case 'SHUTTING_DOWN':
          return proxyErrors.agentOffline(t.route.serverId);
        case 'TIMEOUT':
          return proxyErrors.upstreamFailed(`the agent of server ${t.route.serverId} did not open ${where} within ${OPEN_TIMEOUT_MS / 1000} s`);
        default:
          return proxyErrors.upstreamFailed(err.message);
      }
    }
    if (t.session.closed) return proxyErrors.agentOffline(t.route.serverId);
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
    this.target(req, (t) => {
      if ('status' in t) return fail(t);
      const cls = classifyRequest(req.url ?? '/', req.headers);
      let opened;
      try {
        opened = t.session.open(
          { mappingId: t.route.mappingId, internalPort: t.route.internalPort, kind: StreamKind.HTTP, clientAddress: t.clientIp, clientPort: req.socket.remotePort ?? 0 },
          OPEN_TIMEOUT_MS,
        );
      } catch (err) {
        return fail(this.upstreamError(err as NodeJS.ErrnoException, t));
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
            return fail(this.upstreamError(new PorticoError(errorCodeFromWire(r.code ?? 0), r.message || 'the agent could not open the port'), t));
          }
          const upgrade = req.headers.upgrade ?? 'websocket';
          stream.write(serializeRequestHead(req.method ?? 'GET', req.url ?? '/', this.headers(req, t, upgrade)));
          if (head.length > 0) stream.write(head);
          const idle = idleTimeoutMs(cls, this.timeouts);
          const s = socket as Duplex & { setTimeout?(ms: number, cb?: () => void): void; setNoDelay?(v: boolean): void };
          s.setNoDelay?.(true);
          if (idle > 0) s.setTimeout?.(idle, () => socket.destroy());
          else s.setTimeout?.(0);
          splice(socket, stream);
        },
        (err: Error) => {
          socket.off('close', onEarlyClose);
          stream.destroy();
          fail(this.upstreamError(err, t));
        },
      );
    });
  };
}
