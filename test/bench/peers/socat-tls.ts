// The native TLS pipe: the Node TLS pipe's topology (peers/node-tls-pipe.ts)
// with two socat processes and OpenSSL instead of Node — front
// TCP-LISTEN -> OPENSSL, back OPENSSL-LISTEN -> TCP to the target, 256 KiB
// copy buffers, TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256 (the tunnel's cipher;
// socat 1.7 cannot pick TLS 1.3 suites). What C code running OpenSSL's
// SSL_read/SSL_write loop moves through the relay + agent topology: the
// ceiling of moving Portico's per-byte path into native code with the same
// TLS records. A throughput reference, not a column. Loopback only.
import path from 'node:path';
import { ensureDevCerts } from '../../../relay/tls/dev-certs.js';
import { assertLoopback, freePort, makeTempDir, removeTempDir, spawnTracked, stopChild, waitForPort, which, type Spawned } from './proc.js';
import type { Forward, PathAdapter } from './types.js';

const HOST = '127.0.0.1';
const BLOCK = String(256 * 1024);
const TLS = 'openssl-max-proto-version=TLS1.2,cipher=ECDHE-ECDSA-AES128-GCM-SHA256';

export const socatTls: PathAdapter = {
  name: 'socat-tls',
  label: 'socat TLS pipe',
  available: async () => (which('socat') ? null : 'socat not installed (apt-get install socat)'),
  open: async () => {
    const bin = which('socat') as string;
    const certDir = makeTempDir('socat-tls');
    await ensureDevCerts(certDir, 'localhost', 'connect01.localhost');
    const cert = path.join(certDir, 'relay.crt');
    const key = path.join(certDir, 'relay.key');
    const ca = path.join(certDir, 'ca.pem');
    const procs: Spawned[] = [];
    const spawnPart = async (args: string[], port: number): Promise<Spawned> => {
      const p = spawnTracked(bin, ['-b', BLOCK, ...args]);
      procs.push(p);
      await waitForPort(HOST, port, 5000, `socat TLS pipe: ${p.output()}`);
      return p;
    };
    return {
      targetPorts: null,
      info: { kind: `two socat processes, TCP <-> OpenSSL, -b ${BLOCK}, ${TLS}` },
      start: async ({ targetHost, targetPort }): Promise<Forward> => {
        assertLoopback(targetHost);
        const backPort = await freePort(HOST);
        const back = await spawnPart([`OPENSSL-LISTEN:${backPort},bind=${HOST},reuseaddr,fork,backlog=1024,cert=${cert},key=${key},verify=0,${TLS}`, `TCP:${targetHost}:${targetPort}`], backPort);
        const port = await freePort(HOST);
        const front = await spawnPart([`TCP-LISTEN:${port},bind=${HOST},reuseaddr,fork,backlog=1024`, `OPENSSL:${HOST}:${backPort},cafile=${ca},commonname=connect01.localhost,${TLS}`], port);
        return { host: HOST, port, stop: async () => void (await Promise.all([stopChild(front), stopChild(back)])) };
      },
      stop: async () => {
        await Promise.all(procs.map((p) => stopChild(p)));
        removeTempDir(certDir);
      },
    };
  },
};
