// The native TLS pipe: the Node TLS pipe's topology (peers/node-tls-pipe.ts)
// with two socat processes and OpenSSL instead of Node — front
// TCP-LISTEN -> OPENSSL, back OPENSSL-LISTEN -> TCP to the target, 256 KiB
// copy buffers, TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256 (the tunnel's cipher;
// socat 1.7 cannot pick TLS 1.3 suites). What C code running OpenSSL's
// SSL_read/SSL_write loop moves through the relay + agent topology: the
// ceiling of moving Portico's per-byte path into native code with the same
// TLS records. A throughput reference, not a column. Loopback only.
import { which } from './proc.js';
import { PIPE_HOST as HOST, PIPE_SERVERNAME, tlsPipe } from './tls-pipe.js';
import type { PathAdapter } from './types.js';

const BLOCK = String(256 * 1024);
const TLS = 'openssl-max-proto-version=TLS1.2,cipher=ECDHE-ECDSA-AES128-GCM-SHA256';
const socat = () => which('socat') as string;

export const socatTls: PathAdapter = tlsPipe({
  name: 'socat-tls',
  label: 'socat TLS pipe',
  available: async () => (which('socat') ? null : 'socat not installed (apt-get install socat)'),
  kind: `two socat processes, TCP <-> OpenSSL, -b ${BLOCK}, ${TLS}`,
  back: (port, t, c) => [socat(), ['-b', BLOCK, `OPENSSL-LISTEN:${port},bind=${HOST},reuseaddr,fork,backlog=1024,cert=${c.cert},key=${c.key},verify=0,${TLS}`, `TCP:${t.targetHost}:${t.targetPort}`]],
  front: (port, backPort, c) => [socat(), ['-b', BLOCK, `TCP-LISTEN:${port},bind=${HOST},reuseaddr,fork,backlog=1024`, `OPENSSL:${HOST}:${backPort},cafile=${c.ca},commonname=${PIPE_SERVERNAME},${TLS}`]],
});
