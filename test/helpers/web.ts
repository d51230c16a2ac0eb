/**
 * Helpers for the HTTPS web proxy tests: a relay with extra `https:` keys, a
 * small origin app (JSON echo, bodies, big deterministic downloads with Range,
 * uploads hashed, SSE, stalls, WebSocket echo) on TARGET_HOST, and an HTTPS
 * client that connects to the relay on 127.0.0.1 with any Host/SNI.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { WebSocketServer } from 'ws';
import { TARGET_HOST, startRelay, type AgentHandle, type RelayHandle } from './cluster.js';

export interface WebRelayOptions {
  /** Extra keys inside `https: {…}` (flow YAML), e.g. `timeouts: { standard: 1s }, host_header: rewrite`. */
  https?: string;
  logLevel?: string;
}

/** Like cluster.startRelay, with extra https keys. */
export function startWebRelay(opts: WebRelayOptions = {}): Promise<RelayHandle> {
  return startRelay({ https: opts.https, logLevel: opts.logLevel });
}

/** The HTTPS host names an agent printed for one internal port: [secure, named-or-id]. */
export async function httpsHostsOf(agent: AgentHandle, internalPort: number): Promise<{ secure: string; other: string }> {
  const re = new RegExp(`^https\\s+https://(\\S+?)(?::\\d+)? -> \\S+:${internalPort}$`);
  await agent.out.waitFor(re);
  // Both lines come in the same write; wait for the second one too.
  for (let i = 0; i < 100 && agent.out.lines.filter((l) => re.test(l)).length < 2; i++) await new Promise((r) => setTimeout(r, 20));
  const hosts = agent.out.lines.map((l) => re.exec(l)?.[1]).filter((h): h is string => Boolean(h));
  const secure = hosts.find((h) => h.includes('.secure.'));
  const other = hosts.find((h) => !h.includes('.secure.'));
  if (!secure || !other) throw new Error(`agent printed no https lines for port ${internalPort}:\n${agent.out.lines.join('\n')}`);
  return { secure, other };
}

// ---- the origin app ----

/** Deterministic bytes: a 1 MiB block of pseudo-random data; byte i of the resource is block[i % 1MiB] ^ (i >> 20). */
const BLOCK = (() => {
  const b = Buffer.alloc(1 << 20);
  let x = 0x12345678;
  for (let i = 0; i < b.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
})();

/** Bytes [start, end) of the deterministic resource. */
export function resourceSlice(start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(end - start);
  for (let i = start; i < end; ) {
    const mib = Math.floor(i / BLOCK.length);
    const off = i % BLOCK.length;
    const n = Math.min(BLOCK.length - off, end - i);
    const dst = out.subarray(i - start, i - start + n);
    BLOCK.copy(dst, 0, off, off + n);
    if (mib & 0xff) for (let k = 0; k < n; k++) dst[k]! ^= mib & 0xff;
    i += n;
  }
  return out;
}

/** sha256 of bytes [0, size) of the deterministic resource. */
export function resourceSha(size: number): string {
  const h = createHash('sha256');
  for (let i = 0; i < size; i += BLOCK.length) h.update(resourceSlice(i, Math.min(size, i + BLOCK.length)));
  return h.digest('hex');
}

export interface Origin {
  port: number;
  /** Client connections the app accepted (pooling shows as few). */
  connections: number;
  /** Requests seen, by X-Test-Tag header. */
  seen: Map<string, number>;
  close(): Promise<void>;
}

function streamResource(res: http.ServerResponse, start: number, end: number): void {
  let pos = start;
  const pump = () => {
    while (pos < end) {
      const n = Math.min(256 * 1024, end - pos);
      const ok = res.write(resourceSlice(pos, pos + n));
      pos += n;
      if (!ok) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  pump();
}

export async function startOrigin(host = TARGET_HOST): Promise<Origin> {
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };
  const origin: Origin = { port: 0, connections: 0, seen: new Map(), close: async () => undefined };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const q = (k: string, d: number) => Number(url.searchParams.get(k) ?? d);
    const tag = req.headers['x-test-tag'];
    if (typeof tag === 'string') origin.seen.set(tag, (origin.seen.get(tag) ?? 0) + 1);
    switch (url.pathname) {
      case '/echo-headers': {
        const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders, remotePort: req.socket.remotePort });
        res.writeHead(200, { 'content-type': 'application/json', 'keep-alive': 'timeout=5', 'x-hop': 'drop me', connection: 'keep-alive, x-hop' });
        res.end(body);
        return;
      }
      case '/echo': {
        res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/octet-stream' });
        req.pipe(res);
        return;
      }
      case '/upload': {
        const h = createHash('sha256');
        let n = 0;
        req.on('data', (c: Buffer) => {
          h.update(c);
          n += c.length;
        });
        req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ sha256: h.digest('hex'), bytes: n })));
        return;
      }
      case '/file': {
        const size = q('size', 1 << 20);
        const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
        const base = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes', etag: `"r${size}"` };
        if (range && (range[1] || range[2])) {
          let start = range[1] ? Number(range[1]) : size - Number(range[2]);
          let end = range[1] && range[2] ? Number(range[2]) + 1 : size;
          start = Math.max(0, start);
          end = Math.min(size, end);
          if (start >= size || start >= end) {
            res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
            return;
          }
          res.writeHead(206, { ...base, 'content-length': end - start, 'content-range': `bytes ${start}-${end - 1}/${size}` });
          streamResource(res, start, end);
          return;
        }
        res.writeHead(200, { ...base, 'content-length': size });
        streamResource(res, 0, size);
        return;
      }
      case '/sse':
      case '/stream':
      case '/events': {
        const n = q('n', 5);
        const gap = q('gap', 200);
        const first = q('first', 0);
        const ndjson = url.searchParams.get('type') === 'ndjson';
        res.writeHead(200, { 'content-type': ndjson ? 'application/x-ndjson' : 'text/event-stream', 'cache-control': 'no-cache' });
        let i = 0;
        const tick = () => {
          if (res.destroyed) return;
          res.write(ndjson ? `${JSON.stringify({ i, t: Date.now() })}\n` : `data: ${i} ${Date.now()}\n\n`);
          if (++i >= n) res.end();
          else later(gap, tick);
        };
        later(first, tick);
        return;
      }
      case '/halves': {
        // A fixed-length body in two halves, `gap` ms apart (the proxy must not hold the first back).
        const half = Buffer.alloc(q('half', 1000), 0x61);
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 * half.length });
        res.write(half);
        later(q('gap', 300), () => {
          if (!res.destroyed) res.end(Buffer.alloc(half.length, 0x62));
        });
        return;
      }
      case '/stall':
      case '/api/generate': {
        later(q('ms', 3000), () => {
          if (!res.destroyed) res.writeHead(200, { 'content-type': 'text/plain' }).end('late\n');
        });
        return;
      }
      case '/attachment': {
        // Headers now, body after a pause: the response is a download, so the download timeout applies.
        res.writeHead(200, { 'content-type': 'text/plain', 'content-disposition': 'attachment; filename="x.txt"' });
        res.write('part 1\n');
        later(q('pause', 2000), () => {
          if (!res.destroyed) res.end('part 2\n');
        });
        return;
      }
      default:
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`hello ${req.method} ${req.url}\n`);
    }
  });
  server.on('connection', (s: net.Socket) => {
    origin.connections++;
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  const wss = new WebSocketServer({ server, path: '/ws' });
  wss.on('connection', (ws, req) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('ping', () => undefined); // ws answers pings by itself
    if (req.headers['x-forwarded-for']) ws.send(`xff ${String(req.headers['x-forwarded-for'])}`);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  origin.port = (server.address() as net.AddressInfo).port;
  origin.close = async () => {
    for (const t of timers) clearTimeout(t);
    for (const c of wss.clients) c.terminate();
    wss.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return origin;
}

// ---- the client ----

export interface WebResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The client socket's local port (same = keep-alive reused). */
  localPort: number;
}

export interface WebRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  agent?: https.Agent | false;
  /** TLS SNI (defaults to host without port). */
  servername?: string;
}

/** An HTTPS request to the relay at 127.0.0.1:port with Host `host`. */
export function webRequest(relay: RelayHandle, host: string, req: WebRequest = {}): Promise<WebResponse> {
  const ca = caOf(relay);
  return new Promise((resolve, reject) => {
    const r = https.request(
      {
        host: '127.0.0.1',
        port: relay.ports.https,
        method: req.method ?? 'GET',
        path: req.path ?? '/',
        servername: req.servername ?? host.replace(/:\d+$/, ''),
        headers: { host, ...(req.headers ?? {}) },
        ca,
        agent: req.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), localPort: res.socket?.localPort ?? 0 }));
        res.on('error', reject);
      },
    );
    r.on('error', reject);
    r.end(req.body);
  });
}

const caCache = new Map<string, Buffer>();
export function caOf(relay: RelayHandle): Buffer {
  let ca = caCache.get(relay.caPath);
  if (!ca) caCache.set(relay.caPath, (ca = readFileSync(relay.caPath)));
  return ca;
}
