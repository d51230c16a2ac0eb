#!/usr/bin/env node
// Thin shim: the CLI lives in dist/cli/main.js (built by `npm install` via the prepare script, or `npm run build`).
import { existsSync } from 'node:fs';
const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('portico: not built yet; run `npm run build` in the checkout first\n');
  process.exit(2);
}
await import(main.href);
