#!/usr/bin/env node
// Runs the compiled tap suite (dist/test/**) and ends with one line
// "N passed, N failed" counted over every test (the t.test() blocks inside
// each file, or the file itself when it has none), so CI can count.
// Usage: node test/run.mjs [tap args / test files...]
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

const long = process.env.PORTICO_LONG === '1';
const extra = process.argv.slice(2);
const files = extra.filter((a) => !a.startsWith('-'));
const flags = extra.filter((a) => a.startsWith('-'));
const targets = files.length > 0 ? files : ['dist/test/unit', 'dist/test/compliance', 'dist/test/e2e', ...(long ? ['dist/test/long'] : [])].filter((d) => existsSync(d));

const child = spawn(process.execPath, ['node_modules/tap/dist/esm/run.mjs', '--reporter=tap', ...flags, ...targets], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env },
});

let passed = 0;
let failed = 0;
let skipped = 0;
let buf = '';
// Per file: did it report children at depth 1?
let fileChildren = 0;
let sawChildFail = false;
const onLine = (line) => {
  process.stdout.write(line + '\n');
  const child1 = /^    (not ok|ok) \d+/.exec(line);
  if (child1) {
    fileChildren++;
    if (child1[1] === 'ok') {
      if (/# SKIP/i.test(line)) skipped++;
      else passed++;
    } else {
      failed++;
      sawChildFail = true;
    }
    return;
  }
  const top = /^(not ok|ok) \d+/.exec(line);
  if (top) {
    if (fileChildren === 0) {
      if (top[1] === 'ok') {
        if (/# SKIP/i.test(line)) skipped++;
        else passed++;
      } else failed++;
    } else if (top[1] === 'not ok' && !/# (SKIP|TODO)/i.test(line) && !sawChildFail) {
      failed++; // children passed but the file itself failed (crash, timeout, exit code)
    }
    fileChildren = 0;
    sawChildFail = false;
  }
};
child.stdout.setEncoding('utf8');
child.stdout.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\n')) >= 0) {
    onLine(buf.slice(0, i));
    buf = buf.slice(i + 1);
  }
});
child.on('close', (code) => {
  if (buf) onLine(buf);
  if (code !== 0 && failed === 0) failed = 1; // the runner failed without a failing test line (crash, coverage)
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(code ?? 1);
});
