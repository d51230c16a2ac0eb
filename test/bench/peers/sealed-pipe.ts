// The proposed design change, measured: the TLS pipes' topology with a
// native copy loop that seals 64 KiB units (AES-128-GCM, one read, one seal
// in place, one write) instead of 16 KiB TLS records — experiments/sealpipe.c,
// compiled here with the system's C compiler and OpenSSL (nothing is
// installed; skipped without them). No handshake: the key is fixed, so only
// the per-byte path is measured. A throughput reference, not a column.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir, which } from './proc.js';
import { PIPE_HOST as HOST, tlsPipe } from './tls-pipe.js';
import type { PathAdapter } from './types.js';

const UNIT = String(64 * 1024);
let binary: string | null = null;

/** experiments/sealpipe.c beside the bench's sources (from dist/ or from the sources themselves). */
function sourceFile(): string | null {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = path.join(dir, 'test', 'bench', 'experiments', 'sealpipe.c');
    if (existsSync(p)) return p;
    dir = path.dirname(dir);
  }
  return null;
}

/** Compiles sealpipe once per bench run; null when built, else why not. */
function build(): string | null {
  if (binary) return null;
  const cc = which('cc') ?? which('gcc');
  if (!cc) return 'no C compiler (apt-get install gcc libssl-dev)';
  if (!existsSync('/usr/include/openssl/evp.h')) return 'no OpenSSL headers (apt-get install libssl-dev)';
  const src = sourceFile();
  if (!src) return 'test/bench/experiments/sealpipe.c not found';
  const out = path.join(makeTempDir('sealpipe'), 'sealpipe');
  try {
    execFileSync(cc, ['-O2', '-pthread', '-o', out, src, '-lcrypto'], { stdio: 'pipe', timeout: 60_000 });
  } catch (e) {
    return `sealpipe did not compile: ${String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).slice(0, 200)}`;
  }
  binary = out;
  return null;
}

export const sealedPipe: PathAdapter = tlsPipe({
  name: 'sealed-pipe',
  label: 'sealed-unit pipe',
  available: async () => build(),
  kind: `two native processes (experiments/sealpipe.c), TCP <-> ${UNIT}-byte AES-128-GCM units over TCP, fixed key`,
  back: (port, t) => [binary!, ['back', String(port), t.targetHost, String(t.targetPort), UNIT]],
  front: (port, backPort) => [binary!, ['front', String(port), HOST, String(backPort), UNIT]],
});
