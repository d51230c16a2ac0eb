// Process, temp-dir and port bookkeeping for the benchmark harness.
// Every child is spawned in its own process group and registered here, so a
// crash, Ctrl-C or watchdog timeout kills the whole group (socat's forked
// children, ssh's session) and removes every temp dir we made.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, constants as fsConstants, mkdtempSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
const asyncCleanups = new Set<() => Promise<void>>();
let handlersInstalled = false;
let stopping = false;

/** True once a signal or the watchdog asked the run to stop. */
export function isStopping(): boolean {
  return stopping;
}

/** Only loopback is ever a target of this harness. */
export function assertLoopback(host: string): void {
  if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) && host !== '::1' && host !== 'localhost') {
    throw new Error(`refusing non-loopback address ${host}`);
  }
}

export interface Spawned {
  child: ChildProcess;
  /** stdout+stderr tail (last 64 KiB) for error messages. */
  output(): string;
  /** All of stdout (up to 64 MiB), e.g. a JSON report. */
  stdout(): string;
  /** Resolves with the exit code (or null when killed by a signal). */
  exited: Promise<number | null>;
  kill(): void;
}

export function spawnTracked(cmd: string, args: string[], opts: SpawnOptions = {}): Spawned {
  installExitHandlers();
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...opts });
  children.add(child);
  let out = '';
  const stdoutParts: Buffer[] = [];
  let stdoutLen = 0;
  child.stdout?.on('data', (d: Buffer) => {
    if (stdoutLen + d.length <= 64 * 1024 * 1024) {
      stdoutParts.push(d);
      stdoutLen += d.length;
    }
  });
  const onData = (d: Buffer): void => {
    out += d.toString('utf8');
    if (out.length > 65536) out = out.slice(-65536);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | null>((resolve) => {
    child.once('error', (err) => {
      out += `\nspawn error: ${err.message}`;
      children.delete(child);
      resolve(-1);
    });
    child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    });
  });
  return { child, output: () => out, stdout: () => Buffer.concat(stdoutParts).toString('utf8'), exited, kill: () => killChild(child) };
}

export function killChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): void {
  if (child.exitCode !== null || child.signalCode !== null) {
    children.delete(child);
    return;
  }
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal); // whole group
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

/** SIGTERM, then SIGKILL after graceMs if still alive. */
export async function stopChild(s: Spawned, graceMs = 2000): Promise<void> {
  s.kill();
  if ((await withTimeout(s.exited, graceMs)) === TIMEOUT) {
    killChild(s.child, 'SIGKILL');
    await withTimeout(s.exited, 1000);
  }
}

export const TIMEOUT = Symbol('timeout');
/** p, or TIMEOUT after ms (the timer is cleared either way, and keeps the loop alive meanwhile). */
export async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMEOUT> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<typeof TIMEOUT>((r) => (timer = setTimeout(() => r(TIMEOUT), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export function makeTempDir(prefix: string): string {
  installExitHandlers();
  const d = mkdtempSync(path.join(os.tmpdir(), `portico-bench-${prefix}-`));
  tempDirs.add(d);
  return d;
}

export function removeTempDir(d: string): void {
  tempDirs.delete(d);
  rmSync(d, { recursive: true, force: true });
}

/** Register an async cleanup (e.g. a cluster's stop()) run on signals and by cleanupAll(). */
export function onCleanup(fn: () => Promise<void>): () => void {
  installExitHandlers();
  asyncCleanups.add(fn);
  return () => asyncCleanups.delete(fn);
}

function syncCleanup(): void {
  for (const c of [...children]) {
    killChild(c, 'SIGKILL');
  }
  children.clear();
  for (const d of [...tempDirs]) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
  tempDirs.clear();
}

/** Run the async cleanups (bounded to 10 s), then kill whatever is left. */
export async function cleanupAll(): Promise<void> {
  stopping = true;
  const fns = [...asyncCleanups];
  asyncCleanups.clear();
  await withTimeout(Promise.allSettled(fns.map((f) => f())), 10_000);
  for (const c of [...children]) killChild(c, 'SIGTERM');
  await sleep(200);
  syncCleanup();
}

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', syncCleanup);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping children…\n`);
      void cleanupAll().finally(() => process.exit(130));
    });
  }
}

/** A port that was free on `host` a moment ago (bind 0, read, close). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  assertLoopback(host);
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Poll until a TCP connect to host:port succeeds (bounded by timeoutMs). */
export async function waitForPort(host: string, port: number, timeoutMs = 10_000, why = ''): Promise<void> {
  assertLoopback(host);
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port });
      const done = (v: boolean): void => {
        s.destroy();
        resolve(v);
      };
      s.once('connect', () => done(true));
      s.once('error', () => done(false));
      s.setTimeout(1000, () => done(false));
    });
    if (ok) return;
    if (Date.now() > deadline) break;
    await sleep(50);
  }
  throw new Error(`nothing listening on ${host}:${port} after ${timeoutMs} ms${why ? ` (${why})` : ''}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Absolute path of an executable on PATH (plus /usr/sbin), or null. */
export function which(cmd: string): string | null {
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/local/sbin', '/sbin']);
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, cmd);
    try {
      if (isExecutable(p)) return p;
    } catch {
      /* keep looking */
    }
  }
  return null;
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, fsConstants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}
