// HTTP connection rate: nginx (one worker, loopback only, throwaway prefix
// dir) serves a 4 KiB body as the origin; wrk with `Connection: close` makes
// every request a new TCP connection through the path.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  assertLoopback,
  makeTempDir,
  removeTempDir,
  spawnTracked,
  stopChild,
  waitForPort,
  which,
} from '../peers/proc.js';

/**
 * The part every bench nginx shares: foreground, one worker (the machine has
 * 2 cores; each side gets the same), everything under the throwaway prefix
 * `dir` (needs dir/tmp), and an open `http {` block the caller continues.
 */
export function nginxConfHead(dir: string): string {
  const isRoot = process.getuid?.() === 0;
  return `daemon off;
master_process on;
worker_processes 1;
${isRoot ? 'user root;' : ''}
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;`;
}

export function nginxWrkMissing(): string | null {
  const missing = ['nginx', 'wrk'].filter((c) => !which(c));
  return missing.length ? `${missing.join(' and ')} not installed (apt-get install nginx wrk)` : null;
}

export function nginxVersion(): string {
  const p = which('nginx');
  return p ? spawnSync(p, ['-v'], { encoding: 'utf8' }).stderr.trim() : 'absent';
}

export async function startNginxOrigin(host: string, port: number): Promise<{ stop(): Promise<void> }> {
  assertLoopback(host);
  const bin = which('nginx');
  if (!bin) throw new Error('nginx not installed');
  const dir = makeTempDir('nginx');
  mkdirSync(path.join(dir, 'www'));
  mkdirSync(path.join(dir, 'tmp'));
  writeFileSync(path.join(dir, 'www', '4k'), Buffer.alloc(4096, 0x6e));
  const conf = `
${nginxConfHead(dir)}
  default_type application/octet-stream;
  keepalive_requests 100000;
  server {
    listen ${host}:${port} backlog=4096;
    root ${dir}/www;
  }
}
`;
  writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const p = spawnTracked(bin, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log')]);
  try {
    await waitForPort(host, port, 5000, `nginx: ${p.output()}`);
  } catch (e) {
    await stopChild(p);
    removeTempDir(dir);
    throw e;
  }
  return {
    stop: async () => {
      await stopChild(p, 3000);
      removeTempDir(dir);
    },
  };
}

export interface WrkResult {
  perSec: number;
  requests: number;
  non2xx: number;
  socketErrors: string | null;
  p50ms: number | null;
  p99ms: number | null;
}

function ms(s: string | undefined): number | null {
  if (!s) return null;
  const m = /^([\d.]+)(us|ms|s)$/.exec(s);
  if (!m) return null;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

export async function runWrkClose(opts: {
  host: string;
  port: number;
  seconds: number;
  connections?: number;
}): Promise<WrkResult> {
  assertLoopback(opts.host);
  const bin = which('wrk');
  if (!bin) throw new Error('wrk not installed');
  const c = opts.connections ?? 16;
  const p = spawnTracked(bin, [
    '-t1',
    `-c${c}`,
    `-d${Math.max(1, Math.round(opts.seconds))}s`,
    '--timeout', '5s',
    '--latency',
    '-H', 'Connection: close',
    `http://${opts.host}:${opts.port}/4k`,
  ]);
  const timer = setTimeout(() => p.kill(), (opts.seconds + 20) * 1000);
  const code = await p.exited;
  clearTimeout(timer);
  const out = p.output();
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (code !== 0 || !rps) throw new Error(`wrk exited ${code}: ${out.slice(-300)}`);
  const reqs = /(\d+) requests in/.exec(out);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  const sock = /Socket errors:\s+(.*)/.exec(out);
  return {
    perSec: Number(rps[1]),
    requests: Number(reqs?.[1] ?? 0),
    non2xx: Number(non2xx?.[1] ?? 0),
    socketErrors: sock?.[1]?.trim() ?? null,
    p50ms: ms(/\s50%\s+(\S+)/.exec(out)?.[1]),
    p99ms: ms(/\s99%\s+(\S+)/.exec(out)?.[1]),
  };
}
