// The Node HTTPS proxy reference for the HTTPS bench: node's https server
// terminating TLS and node's http client (keep-alive agent) forwarding each
// request straight to the origin — the textbook Node reverse proxy, with one
// process and one hop fewer than Portico (no agent, no mux). If Portico's
// req/s is about what this reaches, the gap to nginx is Node's HTTP + TLS
// stack, not the tunnel. Loopback only.
//   node dist/test/bench/peers/node-https-proxy.js <port> <originHost> <originPort> <certFile> <keyFile>
import http from 'node:http';
import https from 'node:https';
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

/** Starts the reference proxy on 127.0.0.1:port; stop() ends it. */
export async function startNodeHttpsProxy(port: number, originHost: string, originPort: number, certFile: string, keyFile: string): Promise<{ pid: number | undefined; stop(): Promise<void> }> {
  assertLoopback(originHost);
  const p = spawnTracked(process.execPath, [script, String(port), originHost, String(originPort), certFile, keyFile]);
  await waitForPort(HOST, port, 5000, `node https proxy: ${p.output()}`);
  return { pid: p.child.pid, stop: () => stopChild(p) };
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === script) {
  const a = process.argv.slice(2);
  if (a.length !== 5) {
    process.stderr.write('usage: node-https-proxy.js <port> <originHost> <originPort> <certFile> <keyFile>\n');
    process.exit(2);
  }
  run(Number(a[0]), a[1]!, Number(a[2]), a[3]!, a[4]!);
}
