// The Node TLS pipe: what Node's own streams do with the relay + agent
// topology when nothing is multiplexed. Two Node processes per forward:
//   front  public TCP listener; each connection dials `back` over TLS
//   back   TLS listener; each connection dials the target service
// and every pair of sockets is joined with stream.pipe() both ways. Same
// TLS version and cipher as the tunnel (TLS 1.3, AES-128-GCM, MODERN_CIPHERS),
// same process count, one TLS connection per forwarded connection instead of
// one shared yamux session. It is a throughput reference, not a product: if
// Portico moves about what this moves, the cost is Node's TLS path, not
// Portico's framing. Loopback only.
//   node dist/test/bench/peers/node-tls-pipe.js front <port> <backPort> <caFile>
//   node dist/test/bench/peers/node-tls-pipe.js back <port> <targetHost> <targetPort> <certFile> <keyFile>
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Duplex } from 'node:stream';
import { MODERN_CIPHERS } from '../../../shared/transport/tls.js';
import { assertLoopback } from './proc.js';
import { PIPE_HOST as HOST, PIPE_SERVERNAME as SERVERNAME, tlsPipe } from './tls-pipe.js';
import type { PathAdapter } from './types.js';

function join(a: Duplex, b: Duplex): void {
  a.pipe(b);
  b.pipe(a);
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
  a.on('close', () => b.destroy());
  b.on('close', () => a.destroy());
}

function runFront(port: number, backPort: number, caFile: string): void {
  const ca = readFileSync(caFile);
  net
    .createServer({ noDelay: true }, (client) => {
      const up = tls.connect({ host: HOST, port: backPort, ca, servername: SERVERNAME, minVersion: 'TLSv1.3' });
      up.setNoDelay(true);
      join(client, up);
    })
    .listen(port, HOST);
}

function runBack(port: number, targetHost: string, targetPort: number, certFile: string, keyFile: string): void {
  assertLoopback(targetHost);
  tls
    .createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile), ciphers: MODERN_CIPHERS, honorCipherOrder: true, minVersion: 'TLSv1.3', noDelay: true }, (s) => {
      join(s, net.connect({ host: targetHost, port: targetPort, noDelay: true }));
    })
    .listen(port, HOST);
}

const script = fileURLToPath(import.meta.url);

export const nodeTlsPipe: PathAdapter = tlsPipe({
  name: 'node-tls',
  label: 'Node TLS pipe',
  available: async () => null,
  kind: 'two Node processes, net <-> tls with stream.pipe, TLS 1.3 AES-128-GCM, no mux',
  back: (port, t, c) => [process.execPath, [script, 'back', String(port), t.targetHost, String(t.targetPort), c.cert, c.key]],
  front: (port, backPort, c) => [process.execPath, [script, 'front', String(port), String(backPort), c.ca]],
});

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === script) {
  const [mode, ...a] = process.argv.slice(2);
  if (mode === 'front' && a.length === 3) runFront(Number(a[0]), Number(a[1]), a[2]!);
  else if (mode === 'back' && a.length === 5) runBack(Number(a[0]), a[1]!, Number(a[2]), a[3]!, a[4]!);
  else {
    process.stderr.write('usage: node-tls-pipe.js front <port> <backPort> <caFile> | back <port> <targetHost> <targetPort> <cert> <key>\n');
    process.exit(2);
  }
}
