/**
 * WebSocket transport: the fallback for networks whose egress only allows
 * HTTPS. The agent dials wss://<relay>/_tunnel; the relay serves that path on
 * its HTTPS listener (for any host that is not an app's host). Binary
 * messages carry the yamux byte stream; per-message compression is off.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import net from 'node:net';
import { WebSocket, WebSocketServer, createWebSocketStream } from 'ws';
import { PorticoError } from '../errors.js';
import { normalizeAddress } from '../util/net.js';
import type { ClientTransport, DialOptions, PeerInfo } from './transport.js';

export const TUNNEL_PATH = '/_tunnel';
/** Largest WebSocket message accepted (a yamux frame is at most 64 KiB + 12 bytes; writes may batch several). */
const MAX_MESSAGE = 16 * 1024 * 1024;

export interface WebSocketDialOptions extends DialOptions {
  /** Path of the tunnel endpoint (default /_tunnel). */
  path?: string;
}

export const wsClientTransport: ClientTransport & { dial(opts: WebSocketDialOptions): Promise<Duplex & { remoteAddress?: string }> } = {
  name: 'websocket',
  dial(opts: WebSocketDialOptions) {
    return new Promise((resolve, reject) => {
      const host = net.isIPv6(opts.host) ? `[${opts.host}]` : opts.host;
      const ws = new WebSocket(`wss://${host}:${opts.port}${opts.path ?? TUNNEL_PATH}`, {
        ca: opts.ca,
        rejectUnauthorized: !opts.insecure,
        servername: opts.serverName ?? (net.isIP(opts.host) ? undefined : opts.host),
        headers: opts.serverName ? { host: opts.serverName } : undefined,
        perMessageDeflate: false,
        maxPayload: MAX_MESSAGE,
        handshakeTimeout: opts.timeout,
      } as unknown as ConstructorParameters<typeof WebSocket>[1]);
      ws.once('open', () => {
        ws.off('error', reject);
        const raw = (ws as unknown as { _socket?: net.Socket })._socket;
        raw?.setNoDelay(true);
        const stream = createWebSocketStream(ws) as Duplex & { remoteAddress?: string };
        stream.remoteAddress = raw?.remoteAddress;
        resolve(stream);
      });
      ws.once('unexpected-response', (_req, res) => {
        reject(new PorticoError('PROTOCOL_ERROR', `relay answered ${res.statusCode} at ${opts.path ?? TUNNEL_PATH}; is this a Portico relay's HTTPS port?`));
      });
      ws.once('error', reject);
    });
  },
};

/**
 * Returns an upgrade handler for the relay's HTTPS server: it takes WebSocket
 * upgrades to /_tunnel and hands each connection (as a Duplex) to
 * onConnection; it returns false for every other request.
 */
export function tunnelUpgradeHandler(
  onConnection: (conn: Duplex, peer: PeerInfo) => void,
  isAppHost: (host: string | undefined) => boolean,
): { handle(req: IncomingMessage, socket: Duplex, head: Buffer): boolean; close(): void } {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_MESSAGE });
  return {
    handle(req, socket, head) {
      const path = (req.url ?? '').split('?')[0];
      if (path !== TUNNEL_PATH || isAppHost(req.headers.host)) return false;
      wss.handleUpgrade(req, socket, head, (ws) => {
        const raw = (ws as unknown as { _socket?: net.Socket })._socket;
        raw?.setNoDelay(true);
        const stream = createWebSocketStream(ws);
        onConnection(stream, { remoteAddress: normalizeAddress(req.socket.remoteAddress), remotePort: req.socket.remotePort ?? 0, transport: 'websocket' });
      });
      return true;
    },
    close() {
      for (const c of wss.clients) c.terminate();
      wss.close();
    },
  };
}
