// The Node HTTPS proxy references for the HTTPS bench, each one process and
// one hop fewer than Portico (no agent, no mux). Loopback only.
//   http  node's https server terminating TLS and node's http client
//         (keep-alive agent) forwarding each request straight to the origin:
//         the textbook Node reverse proxy. If Portico's req/s is about what
//         this reaches, the gap to nginx is Node's HTTP stack, not the tunnel.
//   raw   node's TLS server and one origin connection per client connection;
//         request heads are found by their blank line and get X-Forwarded-For,
//         response bytes pass through untouched (no HTTP parsing at all). Not
//         a proxy to deploy (no bodies, routing or errors): it measures what
//         Node's TLS and sockets cost without node:http, i.e. the ceiling of a
//         relay front that frames HTTP/1.1 itself (docs/benchmarks.md, session 10).
//   node dist/test/bench/peers/node-https-proxy.js <port> <originHost> <originPort> <certFile> <keyFile> [http|raw]
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MODERN_CIPHERS } from '../../../shared/transport/tls.js';
import { assertLoopback, spawnTracked, stopChild, waitForPort } from './proc.js';

const HOST = '127.0.0.1';
const script = fileURLToPath(import.meta.url);

function run(port: number, originHost: string, originPort: number, certFile: string, keyFile: string): void {
  assertLoopback(originHost);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  https
    .createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile), ciphers: MODERN_CIPHERS, honorCipherOrder: true, minVersion: 'TLSv1.2', noDelay: true }, (req, res) => {
      const headers = { ...req.headers, 'x-forwarded-for': req.socket.remoteAddress ?? '', 'x-forwarded-proto': 'https' };
      const up = http.request({ host: originHost, port: originPort, method: req.method, path: req.url, headers, agent }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    })
    .listen(port, HOST);
}

const HEAD_END = Buffer.from('\r\n\r\n');

function runRaw(port: number, originHost: string, originPort: number, certFile: string, keyFile: string): void {
  assertLoopback(originHost);
  tls
    .createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile), ciphers: MODERN_CIPHERS, honorCipherOrder: true, minVersion: 'TLSv1.2' }, (client) => {
      client.setNoDelay(true);
      const origin = net.connect({ host: originHost, port: originPort, noDelay: true });
      const added = Buffer.from(`X-Forwarded-For: ${client.remoteAddress ?? ''}\r\nX-Forwarded-Proto: https\r\n\r\n`);
      let partial: Buffer | null = null;
      client.on('data', (chunk: Buffer) => {
        let buf = partial ? Buffer.concat([partial, chunk]) : chunk;
        partial = null;
        for (;;) {
          const end = buf.indexOf(HEAD_END);
          if (end < 0) {
            if (buf.length > 0) partial = buf;
            return;
          }
          // The head up to its last header line, then ours and the blank line (the bench's requests have no body).
          const out = Buffer.allocUnsafe(end + 2 + added.length);
          buf.copy(out, 0, 0, end + 2);
          added.copy(out, end + 2);
          origin.write(out);
          buf = buf.subarray(end + 4);
        }
      });
      origin.on('data', (chunk: Buffer) => client.write(chunk));
      client.on('error', () => origin.destroy());
      origin.on('error', () => client.destroy());
      client.on('close', () => origin.destroy());
      origin.on('close', () => client.destroy());
    })
    .listen(port, HOST);
}

/** Starts a reference proxy (`mode`, see the top of this file) on 127.0.0.1:port; stop() ends it. */
export async function startNodeHttpsProxy(
  port: number,
  originHost: string,
  originPort: number,
  certFile: string,
  keyFile: string,
  mode: 'http' | 'raw' = 'http',
): Promise<{ pid: number | undefined; stop(): Promise<void> }> {
  assertLoopback(originHost);
  const p = spawnTracked(process.execPath, [script, String(port), originHost, String(originPort), certFile, keyFile, mode]);
  await waitForPort(HOST, port, 5000, `node https proxy: ${p.output()}`);
  return { pid: p.child.pid, stop: () => stopChild(p) };
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === script) {
  const a = process.argv.slice(2);
  if (a.length < 5 || (a[5] !== undefined && a[5] !== 'http' && a[5] !== 'raw')) {
    process.stderr.write('usage: node-https-proxy.js <port> <originHost> <originPort> <certFile> <keyFile> [http|raw]\n');
    process.exit(2);
  }
  (a[5] === 'raw' ? runRaw : run)(Number(a[0]), a[1]!, Number(a[2]), a[3]!, a[4]!);
}
