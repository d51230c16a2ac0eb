/** TLS transport (the default): TLS 1.2+ (1.3 preferred), Nagle off. */
import tls from 'node:tls';
import net from 'node:net';
import { PorticoError } from '../errors.js';
import { normalizeAddress } from '../util/net.js';
import { CappedCounter } from '../util/capped-counter.js';
import type { ClientTransport, DialOptions, ListenOptions, PeerInfo, ServerTransport, TransportListener } from './transport.js';

const SOCKET_KEEPALIVE_MS = 30_000;

/**
 * Server cipher preference for the tunnel and the HTTPS proxy (Mozilla
 * "intermediate"): AES-128-GCM first (hardware AES on every server CPU,
 * cheaper than AES-256-GCM), then the other TLS 1.3 and ECDHE+AEAD TLS 1.2 suites.
 */
export const MODERN_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** The first byte of every TLS connection: a handshake record. */
const TLS_HANDSHAKE_RECORD = 0x16;

export const tlsServerTransport: ServerTransport = {
  name: 'tls',
  listen(opts: ListenOptions, onConnection, onError): Promise<TransportListener> {
    // The TLS server never listens itself: the plain server below accepts, looks at the first
    // byte (a sealed data connection is not TLS) and hands TLS connections over.
    const tlsServer = tls.createServer({
      cert: opts.cert,
      key: opts.key,
      minVersion: 'TLSv1.2',
      ciphers: MODERN_CIPHERS,
      honorCipherOrder: true,
      handshakeTimeout: opts.handshakeTimeout,
      // The mux does its own half-close; keep the TCP side simple.
      allowHalfOpen: false,
    });
    const server = net.createServer();
    const pending = opts.maxPendingPerIp ? new PendingHandshakes(opts.maxPendingPerIp) : null;
    server.on('connection', (raw: net.Socket) => {
      if (pending && !pending.admit(raw)) {
        raw.destroy();
        onError(new PorticoError('RATE_LIMITED', `more than ${opts.maxPendingPerIp} connections from ${raw.remoteAddress ?? '?'} in the TLS handshake at once; closed`), { remoteAddress: raw.remoteAddress ?? '', remotePort: raw.remotePort ?? 0, transport: 'tls' });
        return;
      }
      const onSealed = opts.onSealed;
      if (!onSealed) {
        tlsServer.emit('connection', raw);
        return;
      }
      // The first byte is usually there at accept: a TLS connection goes to TLS unread.
      if (opts.firstByte?.(raw) === TLS_HANDSHAKE_RECORD) {
        tlsServer.emit('connection', raw);
        return;
      }
      // Else sniff the first bytes (within the handshake timeout), then either hand the socket to
      // TLS with those bytes put back, or to the sealed data path.
      const acceptedAt = Date.now();
      const timer = setTimeout(() => raw.destroy(), opts.handshakeTimeout);
      const onClose = () => clearTimeout(timer);
      raw.once('close', onClose);
      raw.on('error', () => undefined);
      raw.once('data', (first: Buffer) => {
        clearTimeout(timer);
        raw.off('close', onClose);
        raw.pause();
        if (first[0] !== TLS_HANDSHAKE_RECORD) {
          pending?.done(keyOf(raw));
          onSealed(raw, first, Math.max(0, acceptedAt + opts.handshakeTimeout - Date.now()));
          return;
        }
        raw.unshift(first);
        tlsServer.emit('connection', raw);
      });
    });
    tlsServer.on('secureConnection', (socket: tls.TLSSocket) => {
      pending?.done(keyOf(socket));
      socket.setNoDelay(true);
      socket.setKeepAlive(true, SOCKET_KEEPALIVE_MS);
      const peer: PeerInfo = { remoteAddress: socket.remoteAddress ?? '', remotePort: socket.remotePort ?? 0, transport: 'tls' };
      onConnection(socket, peer);
    });
    tlsServer.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
      onError(err, { remoteAddress: socket.remoteAddress ?? '', remotePort: socket.remotePort ?? 0, transport: 'tls' });
      socket.destroy();
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => {
        server.off('error', reject);
        server.on('error', (err) => onError(err));
        if (opts.firstByte) opts.deferAccept?.(server);
        const addr = server.address() as net.AddressInfo;
        resolve({
          host: addr.address,
          port: addr.port,
          close: () => new Promise<void>((res) => server.close(() => res())),
        });
      });
    });
  },
};

/**
 * Connections per IP address that have not finished the TLS handshake. A
 * TLS socket and the TCP socket under it share the peer's address and port,
 * which is how the handshake's end finds its entry.
 */
class PendingHandshakes {
  private readonly perIp: CappedCounter;
  /** "address|port" of each pending connection -> its normalized IP. */
  private readonly open = new Map<string, string>();

  constructor(cap: number) {
    this.perIp = new CappedCounter(cap);
  }

  /** Counts a new TCP connection; false when its address already has the cap in the handshake. */
  admit(raw: net.Socket): boolean {
    const ip = normalizeAddress(raw.remoteAddress);
    if (!this.perIp.tryTake(ip)) return false;
    const key = keyOf(raw);
    this.open.set(key, ip);
    raw.once('close', () => this.done(key));
    return true;
  }

  /** The handshake finished (or the connection closed): no longer pending. */
  done(key: string): void {
    const ip = this.open.get(key);
    if (ip === undefined) return;
    this.open.delete(key);
    this.perIp.release(ip);
  }
}

const keyOf = (s: net.Socket): string => `${s.remoteAddress}|${s.remotePort}`;

const contexts = new WeakMap<string[], tls.SecureContext>();

/** One client context per CA list (the list is cached by its maker, so its identity is stable). */
function contextFor(ca: string[]): tls.SecureContext {
  let ctx = contexts.get(ca);
  if (!ctx) {
    ctx = tls.createSecureContext({ ca, minVersion: 'TLSv1.2' });
    contexts.set(ca, ctx);
  }
  return ctx;
}

export const tlsClientTransport: ClientTransport = {
  name: 'tls',
  dial(opts: DialOptions) {
    return new Promise((resolve, reject) => {
      const servername = opts.serverName ?? (net.isIP(opts.host) ? undefined : opts.host);
      const options: tls.ConnectionOptions = {
        host: opts.host,
        port: opts.port,
        rejectUnauthorized: !opts.insecure,
        servername,
        minVersion: 'TLSv1.2',
      };
      // A CA list (the system trust, ~300 roots) becomes a context once, not at every reconnect (~40 ms each).
      if (Array.isArray(opts.ca)) options.secureContext = contextFor(opts.ca);
      else options.ca = opts.ca;
      // An IP literal without a server name is verified against the certificate's IP SANs.
      // (Only set the option when needed: an explicit undefined trips a Node assertion.)
      if (!opts.serverName && net.isIP(opts.host)) options.checkServerIdentity = (_host, cert) => tls.checkServerIdentity(opts.host, cert);
      const socket = tls.connect(options);
      const timer = setTimeout(() => {
        socket.destroy(new PorticoError('TIMEOUT', `TLS connect to ${opts.host}:${opts.port} timed out after ${opts.timeout} ms`));
      }, opts.timeout);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        socket.off('error', onErr);
        socket.setNoDelay(true);
        socket.setKeepAlive(true, SOCKET_KEEPALIVE_MS);
        resolve(socket);
      });
      const onErr = (err: Error) => {
        clearTimeout(timer);
        reject(err);
      };
      socket.once('error', onErr);
    });
  },
};
