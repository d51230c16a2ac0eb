#!/usr/bin/env node
// Builds the sealed data path's native engine (native/sealed_pump.c) into
// dist/native/portico_sealed.node with the machine's C compiler and Node's
// own headers (OpenSSL's symbols resolve to the ones Node exports). Nothing
// is downloaded. Where it cannot be built (no compiler, no headers), it says
// why and exits 0: Portico then runs every stream over the TLS mux.
//   PORTICO_NATIVE=0 skips the build.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const src = path.join(root, 'native', 'sealed_pump.c');
const out = path.join(root, 'dist', 'native', 'portico_sealed.node');

if (process.env.PORTICO_NATIVE === '0') {
  console.log('native: skipped (PORTICO_NATIVE=0); streams use the TLS mux');
  process.exit(0);
}
if (process.platform !== 'linux') {
  console.log(`native: skipped (the sealed data path is built for Linux, this is ${process.platform}); streams use the TLS mux`);
  process.exit(0);
}
if (existsSync(out) && statSync(out).mtimeMs >= statSync(src).mtimeMs) process.exit(0);

const include = [path.join(path.dirname(realpathSync(process.execPath)), '..', 'include', 'node'), path.join('/usr', 'include', 'node')].find((d) =>
  existsSync(path.join(d, 'node_api.h')) && existsSync(path.join(d, 'openssl', 'evp.h')),
);
if (!include) {
  console.log("native: skipped (Node's headers with OpenSSL were not found next to the node binary); streams use the TLS mux");
  process.exit(0);
}
const cc = process.env.CC || 'cc';
mkdirSync(path.dirname(out), { recursive: true });
try {
  execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-Wno-unused-parameter', '-shared', '-fPIC', '-pthread', `-I${include}`, '-o', out, src], { stdio: ['ignore', 'inherit', 'inherit'] });
  console.log(`native: built ${path.relative(root, out)}`);
} catch (err) {
  console.log(`native: not built (${cc} failed: ${err.message.split('\n')[0]}); streams use the TLS mux`);
}
