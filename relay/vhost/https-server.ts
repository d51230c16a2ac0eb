/**
 * The relay's web front: the TLS listener on https.listen (TLS 1.2+, modern
 * AEAD ciphers, HTTP/1.1 only), hardened against slow and greedy clients
 * (TLS handshake and header timeouts checked every second, header size limit,
 * per-IP connection cap), the fast front that frames plain requests itself
 * (fast-front.ts), the Host router, the forwarding proxy, and the plain-HTTP
 * listener that redirects to HTTPS.
 */
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { readFileSync, statSync } from 'node:fs';
import type { RelayConfig } from '../../shared/config/types.js';
import type { Logger } from '../../shared/logging.js';
import { normalizeAddress } from '../../shared/util/net.js';
import { CappedCounter } from '../../shared/util/capped-counter.js';
import type { Store } from '../store/store.js';
import type { SessionRegistry } from '../sessions/registry.js';
import { HostRouter } from './router.js';
import { HttpProxy } from './proxy.js';
import { FastFront } from './fast-front.js';
import { KEEPALIVE_SECONDS } from './fast-message.js';
import { setFrontStats } from '../metrics.js';
import { UpstreamPool } from './upstream-pool.js';
import { MODERN_CIPHERS } from '../../shared/transport/tls.js';
import { redirectHandler } from './redirect.js';
import { devSniCallback, needsDevSni } from './dev-sni.js';
import type { Observability } from '../observability.js';
import type { ManagementKey, UserDirectory } from '../access/auth.js';


/** What a client that broke the rules is told before the connection is closed. */
const CLIENT_ERROR_ANSWERS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: 'HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 40\r\n\r\nrequest headers are larger than allowed\n',
  ERR_HTTP_REQUEST_TIMEOUT: 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n',
};

/** Idle keep-alive connections from clients are closed after this long. */
const CLIENT_KEEPALIVE_MS = KEEPALIVE_SECONDS * 1000;
/** How often production certificate files are checked for renewal. */
const CERT_CHECK_MS = 5 * 60_000;

export const WEB_DEFAULTS = {
  hostHeader: 'keep' as const,
  maxHeaderBytes: 32 * 1024,
  maxConnectionsPerIp: 256,
  headerTimeout: 8_000,
  fastFront: true,
};

export interface WebProxyDeps {
  config: RelayConfig;
  logger: Logger;
  store: Store;
  registry: SessionRegistry;
  /** PEM used when config.https.cert/key are not set (--dev). */
  devTls?: { cert: string; key: string };
  /** Health gate, replica groups, statistics (relay/observability.ts). */
  obs?: Observability;
  /** Takes upgrades that are agent tunnels (wss://…/_tunnel); returns false for everything else. */
  tunnelUpgrade?: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => boolean;
  /** Resolves management API keys presented at endpoints that need a login (relay/access/auth.ts). */
  managementKey?: (key: string) => Promise<ManagementKey | null>;
}

/** The endpoint-login directory: the store's users and user keys, and management keys when the relay resolves them. */
function endpointUsers(deps: WebProxyDeps): UserDirectory {
  const { store, managementKey } = deps;
  return {
    findUser: (owner, username) => store.findUser(owner, username),
    findUserKeyByHash: (hash) => store.findUserKeyByHash(hash),
    ...(managementKey ? { findManagementKey: managementKey } : {}),
  };
}

export class WebProxy {
  readonly router: HostRouter;
  /** Pooled streams to agents for the proxied requests. */
  readonly pool = new UpstreamPool();
  readonly proxy: HttpProxy;
  /** Connections refused by the per-IP cap. */
  refusedConnections = 0;
  /** The fast front (null with https.fast_front: false). */
  readonly fast: FastFront | null = null;
  private readonly https: https.Server;
  private readonly http: http.Server;
  /** Open connections per client IP (https.max_connections_per_ip). */
  private readonly perIp: CappedCounter;
  private readonly sockets = new Set<net.Socket>();
  private closing = false;
  private certTimer: NodeJS.Timeout | null = null;
  private certMtime = 0;

  private constructor(private readonly deps: WebProxyDeps) {
    const { config, logger } = deps;
    const h = { ...WEB_DEFAULTS, ...definedOnly(config.https) };
    this.perIp = new CappedCounter(h.maxConnectionsPerIp);
    this.router = new HostRouter(deps.store, config, logger.child({ part: 'vhost' }));
    this.proxy = new HttpProxy({ config, logger: logger.child({ part: 'vhost' }), router: this.router, registry: deps.registry, pool: this.pool, users: endpointUsers(deps), closing: () => this.closing, obs: deps.obs });
    deps.obs?.setRouteLookup((host) => this.router.lookup(host));
    const checkEvery = Math.max(250, Math.min(1_000, Math.floor(h.headerTimeout / 2)));
    const hardening = {
      maxHeaderSize: h.maxHeaderBytes,
      headersTimeout: h.headerTimeout,
      // Whole-request limits would cut multi-GiB uploads; bodies are bounded by the idle timeouts instead.
      requestTimeout: 0,
      connectionsCheckingInterval: checkEvery,
      keepAliveTimeout: CLIENT_KEEPALIVE_MS,
      noDelay: true,
      requireHostHeader: false,
    };
    const tlsOptions = { minVersion: 'TLSv1.2' as const, ciphers: MODERN_CIPHERS, honorCipherOrder: true };
    const devSni =
      !config.https.cert && needsDevSni(config.domain)
        ? devSniCallback({ dataDir: config.dataDir, domain: config.domain, contextOptions: tlsOptions, logger })
        : undefined;
    this.https = https.createServer({
      ...this.tlsMaterial(),
      ...tlsOptions,
      ...(devSni ? { SNICallback: devSni } : {}),
      ALPNProtocols: ['http/1.1'],
      handshakeTimeout: h.headerTimeout,
      ...hardening,
    });
    this.https.on('request', this.proxy.onRequest);
    // The fast front takes every TLS connection first and hands node:http what it does not serve itself.
    const nodeHttp = this.https.listeners('secureConnection') as Array<(sock: TLSSocket) => void>;
    if (h.fastFront && nodeHttp.length === 1) {
      const handOver = nodeHttp[0]!;
      this.https.removeListener('secureConnection', handOver);
      const fast = new FastFront({
        router: this.router,
        onRequest: this.proxy.onRequest,
        direct: this.proxy.direct,
        pool: this.pool,
        handOver: (sock) => handOver.call(this.https, sock),
        maxHeaderBytes: h.maxHeaderBytes,
        headerTimeoutMs: h.headerTimeout,
      });
      this.fast = fast;
      setFrontStats(() => fast.stats);
      this.https.on('secureConnection', (sock: TLSSocket) => fast.accept(sock));
    }
    const tunnel = deps.tunnelUpgrade;
    this.https.on('upgrade', tunnel ? (req: http.IncomingMessage, socket: Duplex, head: Buffer) => tunnel(req, socket, head) || this.proxy.onUpgrade(req, socket, head) : this.proxy.onUpgrade);
    this.https.on('tlsClientError', () => undefined);
    this.http = http.createServer({ ...hardening, keepAliveTimeout: 5_000 }, redirectHandler(config));
    for (const server of [this.https, this.http]) {
      server.on('connection', (sock: net.Socket) => this.admit(sock));
      server.on('clientError', (err: NodeJS.ErrnoException, sock: net.Socket) => {
        const answer = CLIENT_ERROR_ANSWERS[err.code ?? ''];
        // Write the answer, then close for real: end() (a TLS half-close) would leave a slow client connected.
        if (answer && sock.writable && !sock.destroyed) {
          sock.write(answer, () => sock.destroy());
          setTimeout(() => sock.destroy(), 1_000).unref();
        } else sock.destroy();
      });
    }
  }

  /** Loads the routing table and listens on https.listen and http.listen. */
  static async start(deps: WebProxyDeps): Promise<WebProxy> {
    const web = new WebProxy(deps);
    await web.router.load();
    const { https: hs, http: hp } = deps.config;
    await listen(web.https, hs.listen.host, hs.listen.port);
    try {
      await listen(web.http, hp.listen.host, hp.listen.port);
    } catch (err) {
      web.https.close();
      throw err;
    }
    web.watchCert();
    return web;
  }

  get addresses(): { https: string; http: string } {
    const fmt = (s: net.Server) => {
      const a = s.address();
      return a && typeof a === 'object' ? `${a.address}:${a.port}` : '';
    };
    return { https: fmt(this.https), http: fmt(this.http) };
  }

  /** Client connections open now (TLS and plain). */
  get connections(): number {
    return this.sockets.size;
  }

  /** Re-reads one server's routes (mappings or proxy settings changed, agent online, server deleted). */
  async refresh(serverId: string): Promise<void> {
    try {
      await this.router.refresh(serverId);
    } catch (err) {
      this.deps.logger.error({ server: serverId, err: (err as Error).message }, 'could not refresh HTTPS routes');
    }
  }

  /** Stops accepting, closes idle client connections and idle agent streams; running requests go on. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.certTimer) clearInterval(this.certTimer);
    this.https.close();
    this.http.close();
    this.https.closeIdleConnections();
    this.http.closeIdleConnections();
    this.fast?.close();
    this.pool.drain();
  }

  /** Cuts everything still open (end of the shutdown grace period). */
  destroy(): void {
    this.close();
    this.https.closeAllConnections();
    this.http.closeAllConnections();
    this.fast?.destroy();
    for (const s of this.proxy.tunnels) s.destroy();
    for (const s of this.sockets) s.destroy();
    this.pool.destroy();
  }

  private admit(sock: net.Socket): void {
    const ip = normalizeAddress(sock.remoteAddress);
    if (!this.perIp.tryTake(ip)) {
      this.refusedConnections++;
      if (this.refusedConnections % 1000 === 1) this.deps.logger.warn({ ip, cap: this.perIp.cap }, 'per-IP connection cap reached; refusing connections');
      sock.destroy();
      return;
    }
    this.sockets.add(sock);
    sock.once('close', () => {
      this.sockets.delete(sock);
      this.perIp.release(ip);
    });
  }

  private tlsMaterial(): { cert: string | Buffer; key: string | Buffer } {
    const { cert, key } = this.deps.config.https;
    if (cert && key) return { cert: readFileSync(cert), key: readFileSync(key) };
    if (!this.deps.devTls) throw new Error('https.cert and https.key are required outside --dev');
    return this.deps.devTls;
  }

  /** Picks up renewed certificate files (e.g. certbot) without a restart. */
  private watchCert(): void {
    const { cert } = this.deps.config.https;
    if (!cert) return;
    this.certMtime = safeMtime(cert);
    this.certTimer = setInterval(() => {
      const m = safeMtime(cert);
      if (m === 0 || m === this.certMtime) return;
      try {
        this.https.setSecureContext({ ...this.tlsMaterial(), minVersion: 'TLSv1.2', ciphers: MODERN_CIPHERS, honorCipherOrder: true });
        this.certMtime = m;
        this.deps.logger.info({ cert }, 'reloaded the HTTPS certificate');
      } catch (err) {
        this.deps.logger.error({ cert, err: (err as Error).message }, 'could not reload the HTTPS certificate; keeping the old one');
      }
    }, CERT_CHECK_MS);
    this.certTimer.unref();
  }
}

function safeMtime(p: string): number {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return 0;
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function listen(server: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog: 1024 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
