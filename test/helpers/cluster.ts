/**
 * Test and bench harness: real `portico relay` and `portico agent` processes
 * (the compiled CLI) on free loopback ports, from a generated relay.yaml.
 * Targets behind the agent live on 127.0.0.2 so identity forwarding never
 * lands on the relay's own public listeners (127.0.0.1).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../../bin/portico.js', import.meta.url));
export const TARGET_HOST = '127.0.0.2';

/** A free TCP port on host (bound then released). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** n distinct free TCP ports: all are bound at once before any is released, so none repeats. */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const s = net.createServer();
          s.once('error', reject);
          s.listen(0, host, () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

/** Collects a child's stdout lines and lets a test wait for one. */
export class LineWatcher {
  readonly lines: string[] = [];
  private buf = '';
  private waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  constructor(stream: NodeJS.ReadableStream | null) {
    stream?.setEncoding?.('utf8');
    stream?.on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        this.lines.push(line);
        this.waiters = this.waiters.filter((w) => {
          if (!w.re.test(line)) return true;
          w.resolve(line);
          return false;
        });
      }
    });
  }
  /** Resolves with the first line (seen before or later) matching re. */
  waitFor(re: RegExp, timeoutMs = 20_000, after = 0): Promise<string> {
    const seen = this.lines.slice(after).find((l) => re.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.re !== re);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re}; got:\n${this.lines.slice(-20).join('\n')}`));
      }, timeoutMs);
      this.waiters.push({
        re,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  }
}

export interface Proc {
  child: ChildProcess;
  out: LineWatcher;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

function track(child: ChildProcess): Proc {
  const out = new LineWatcher(child.stdout);
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  return {
    child,
    out,
    exited,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

const live = new Set<ChildProcess>();
const agentDirs = new Set<string>();
const killAll = () => {
  for (const c of live) c.kill('SIGKILL');
  for (const d of agentDirs) rmSync(d, { recursive: true, force: true });
};
process.once('exit', killAll);
// A test runner timing out (or Ctrl-C) must not leave relays and agents behind.
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.once(sig, () => {
    killAll();
    process.kill(process.pid, sig);
  });
}

/** Extra node flags for every spawned relay/agent, e.g. PORTICO_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof". */
const NODE_ARGS = (process.env.PORTICO_NODE_ARGS ?? '').split(' ').filter(Boolean);

export function spawnPortico(args: string[], env: NodeJS.ProcessEnv = {}, logFile?: string): Proc {
  const child = spawn(process.execPath, [...NODE_ARGS, BIN, ...args], {
    stdio: ['ignore', 'pipe', logFile ? 'pipe' : 'ignore'],
    env: { ...process.env, ...env },
  });
  if (logFile && child.stderr) child.stderr.pipe(createWriteStream(logFile, { flags: 'a' }));
  live.add(child);
  child.once('exit', () => live.delete(child));
  return track(child);
}

export interface RelayOptions {
  /** Extra YAML appended to the generated config (top-level keys). */
  extraYaml?: string;
  /** Reuse a data dir (restart tests). */
  dataDir?: string;
  /** Reuse the ports of an earlier relay (restart tests). */
  ports?: RelayPorts;
  perServer?: number;
  /** ports.bind (default 127.0.0.1; '::' for dual-stack IPv4+IPv6 public ports). */
  bind?: string;
  logLevel?: string;
  /** Extra keys inside `https: {…}` (flow YAML), e.g. `timeouts: { standard: 1s }, host_header: rewrite`. */
  https?: string;
  /** Extra keys inside `tunnel: {…}` (flow YAML), e.g. `sealed_data: false`. */
  tunnel?: string;
  env?: NodeJS.ProcessEnv;
}

export interface RelayPorts {
  tunnel: number;
  api: number;
  https: number;
  http: number;
  rangeStart: number;
  rangeEnd: number;
}

export interface RelayHandle extends Proc {
  dataDir: string;
  ports: RelayPorts;
  apiUrl: string;
  adminKey: string;
  tunnelAddr: string;
  caPath: string;
  logFile: string;
  configPath: string;
  /** Calls the management API; returns status and parsed body. */
  api<T = any>(method: string, path: string, body?: unknown, key?: string): Promise<{ status: number; body: T }>;
}

/** Port-range slots for test relays: slot i is 21000 + i*200 … +199, all below the ephemeral range (32768+). */
const RANGE_BASE = 21000;
const RANGE_SIZE = 200;
const RANGE_SLOTS = 50; // 21000-30999; 31000+ is left to tests with a fixed range (api-servers)
/** Slot i is owned by whoever listens on LOCK_BASE + i, so parallel test files never share a range. */
const LOCK_BASE = 20500;

/**
 * An exclusive block of RANGE_SIZE ports: a random slot whose lock port this
 * process could bind and whose ports probe free. The lock is held (unref'd)
 * until this test process exits, so a relay restarted on the same ports keeps
 * its block too.
 */
async function pickRange(): Promise<{ start: number; end: number }> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const slot = Math.floor(Math.random() * RANGE_SLOTS);
    const lock = await holdPort(LOCK_BASE + slot);
    if (!lock) continue;
    const start = RANGE_BASE + slot * RANGE_SIZE;
    const probes = await Promise.all([start, start + RANGE_SIZE / 2, start + RANGE_SIZE - 1].map((p) => portFree(p)));
    if (probes.every(Boolean)) return { start, end: start + RANGE_SIZE - 1 };
    lock.close();
  }
  throw new Error('no free port range found');
}

function holdPort(port: number): Promise<net.Server | null> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(null));
    s.listen(port, '127.0.0.1', () => resolve(s.unref()));
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

export async function startRelay(opts: RelayOptions = {}): Promise<RelayHandle> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'portico-relay-'));
  const configPath = join(dataDir, 'relay.yaml');
  const logFile = join(dataDir, 'relay.log');
  // Listener ports picked here come from the ephemeral range: between picking and binding, another
  // test's outgoing connection can take one as its local port (seen: EADDRINUSE on 127.0.0.1:35405
  // in CI). Then the relay is started again on fresh ports; given ports are used as they are.
  for (let attempt = 1; ; attempt++) {
    const ports: RelayPorts =
      opts.ports ??
      (await (async () => {
        const range = await pickRange();
        const [tunnel, api, https, http] = (await freePorts(4)) as [number, number, number, number];
        return { tunnel, api, https, http, rangeStart: range.start, rangeEnd: range.end };
      })());
    writeFileSync(
      configPath,
      [
        `data_dir: ${dataDir}`,
        `log_level: ${opts.logLevel ?? 'info'}`,
        `tunnel: { listen: "127.0.0.1:${ports.tunnel}"${opts.tunnel ? `, ${opts.tunnel}` : ''} }`,
        `ports: { bind: "${opts.bind ?? '127.0.0.1'}", range: "${ports.rangeStart}-${ports.rangeEnd}", per_server: ${opts.perServer ?? 10} }`,
        `https: { listen: "127.0.0.1:${ports.https}"${opts.https ? `, ${opts.https}` : ''} }`,
        `http: { listen: "127.0.0.1:${ports.http}" }`,
        `api: { listen: "127.0.0.1:${ports.api}" }`,
        opts.extraYaml ?? '',
        '',
      ].join('\n'),
    );
    const proc = spawnPortico(['relay', '--dev', '--config', configPath], opts.env ?? {}, logFile);
    try {
      await Promise.race([
        proc.out.waitFor(/^relay ready/, 30_000),
        proc.exited.then((c) => {
          throw new Error(`relay exited with ${c} before ready; log: ${safeRead(logFile)}`);
        }),
      ]);
    } catch (err) {
      if (opts.ports === undefined && attempt < 3 && /EADDRINUSE/.test((err as Error).message)) {
        writeFileSync(logFile, '');
        continue;
      }
      throw err;
    }
    return relayHandle(opts, proc, dataDir, ports, configPath, logFile);
  }
}

function relayHandle(opts: RelayOptions, proc: Proc, dataDir: string, ports: RelayPorts, configPath: string, logFile: string): RelayHandle {
  const adminKey = opts.env?.PORTICO_ADMIN_KEY ?? readFileSync(join(dataDir, 'admin.key'), 'utf8').trim();
  const apiUrl = `http://127.0.0.1:${ports.api}`;
  return {
    ...proc,
    dataDir,
    ports,
    apiUrl,
    adminKey,
    tunnelAddr: `127.0.0.1:${ports.tunnel}`,
    caPath: join(dataDir, 'ca.pem'),
    logFile,
    configPath,
    api: async (method, path, body, key) => {
      const res = await fetch(`${apiUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${key ?? adminKey}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    },
  };
}

function safeRead(p: string): string {
  try {
    return readFileSync(p, 'utf8').slice(-2000);
  } catch {
    return '';
  }
}

export interface ServerHandle {
  id: string;
  ports: number[];
  token: string;
}

export async function createServer(relay: RelayHandle, body: Record<string, unknown> = {}): Promise<ServerHandle> {
  const res = await relay.api<{ data: { id: string; ports: number[]; agent_token: string } }>('POST', '/v1/servers', body);
  if (res.status !== 201) throw new Error(`create server failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { id: res.body.data.id, ports: res.body.data.ports, token: res.body.data.agent_token };
}

export interface AgentOptions {
  localHost?: string;
  /** Extra agent.yaml content (mappings etc.). */
  yaml?: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Wait for the "connected" line (default true). */
  wait?: boolean;
}

export interface AgentHandle extends Proc {
  logFile: string;
}

export async function startAgent(relay: RelayHandle, token: string, opts: AgentOptions = {}): Promise<AgentHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'portico-agent-'));
  const cfg = join(dir, 'agent.yaml');
  writeFileSync(cfg, [`relay: "${relay.tunnelAddr}"`, `ca: ${relay.caPath}`, `local_host: ${opts.localHost ?? TARGET_HOST}`, 'max_backoff: 1s', opts.yaml ?? '', ''].join('\n'));
  const logFile = join(dir, 'agent.log');
  const proc = spawnPortico(['agent', '--config', cfg, ...(opts.args ?? [])], { PORTICO_TOKEN: token, ...(opts.env ?? {}) }, logFile);
  agentDirs.add(dir);
  if (opts.wait !== false) {
    await Promise.race([
      proc.out.waitFor(/^connected to /, 20_000),
      proc.exited.then((c) => {
        throw new Error(`agent exited with ${c} before connecting: ${safeRead(logFile)}`);
      }),
    ]);
  }
  return { ...proc, logFile };
}

export interface Cluster {
  relay: RelayHandle;
  server: ServerHandle;
  agent: AgentHandle;
  stop(): Promise<void>;
}

/** A relay, one server and its agent forwarding to TARGET_HOST. */
export async function startCluster(opts: { relay?: RelayOptions; server?: Record<string, unknown>; agent?: AgentOptions } = {}): Promise<Cluster> {
  const relay = await startRelay(opts.relay);
  try {
    const server = await createServer(relay, opts.server);
    const agent = await startAgent(relay, server.token, opts.agent);
    const cluster: Cluster = {
      relay,
      server,
      agent,
      // Tests may replace cluster.agent / cluster.relay: stop whatever is current.
      stop: async () => {
        await cluster.agent.stop();
        await cluster.relay.stop();
        rmSync(relay.dataDir, { recursive: true, force: true, maxRetries: 3 });
      },
    };
    return cluster;
  } catch (err) {
    await relay.stop('SIGKILL');
    throw err;
  }
}

/** Polls fn until it returns truthy or the timeout passes. */
export async function eventually<T>(fn: () => T | Promise<T>, timeoutMs = 10_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
