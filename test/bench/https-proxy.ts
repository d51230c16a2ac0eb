// HTTPS web proxy bench: keep-alive request/response throughput and latency
// (4 KiB body, 50 connections by default) for three paths to one nginx origin
// on 127.0.0.2:
//   direct   the origin itself, plain HTTP (the ceiling)
//   nginx    nginx terminating TLS + proxy_pass with upstream keep-alive (the
//            issue-7 reference; one worker, like the one-thread relay)
//   node     node's https server + http client with a keep-alive agent straight to the
//            origin (peers/node-https-proxy.ts): what Node itself reaches, one hop fewer
//   noderaw  node's TLS server piping bytes to one origin connection per client, heads
//            found by their blank line, no node:http (same file, raw mode): what Node's
//            TLS and sockets alone cost, the ceiling of a relay front framing HTTP itself
//   portico  the relay's HTTPS proxy -> mux stream -> agent -> origin
// Load: wrk when on PATH (-t1), else a Node keep-alive generator. Loopback only.
// CPU cost: utime+stime of the relay and agent processes (and nginx's worker)
// before/after each measured run, printed as CPU µs per request (steadier
// than req/s on a shared machine).
//   node dist/test/bench/https-proxy.js [--seconds=10] [--connections=50] [--node]
//     [--only=portico] (skip the direct and nginx rows) [--reps=N] (N rounds: nginx, node and
//     portico measured back to back in each; each row is its median run, the target ratio the
//     median of the rounds' portico ÷ nginx)
// Exports benchHttpsProxy() for test/bench/run.ts.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDevCerts } from '../../relay/tls/dev-certs.js';
import { createServer, startAgent } from '../helpers/cluster.js';
import { httpsHostsOf, startWebRelay } from '../helpers/web.js';
import { Histogram } from './load/histogram.js';
import { cpuMeter, cpuSeconds, cpuSecondsWithChildren } from './load/proc-cpu.js';
import { nginxConfHead, startNginxOrigin, nginxVersion } from './load/nginx-wrk.js';
import { startNodeHttpsProxy } from './peers/node-https-proxy.js';
import { assertLoopback, cleanupAll, freePort, makeTempDir, removeTempDir, spawnTracked, stopChild, waitForPort, which } from './peers/proc.js';

const ORIGIN_HOST = '127.0.0.2';

export interface HttpsBenchRow {
  path: 'direct' | 'nginx' | 'node' | 'noderaw' | 'portico';
  label: string;
  rps: number;
  p50ms: number;
  p99ms: number;
  errors: number;
  /** CPU µs per request by process (relay, agent; nginx for the nginx row, node for the Node reference). */
  cpuUs?: Record<string, number>;
  note?: string;
}

export interface HttpsBenchResult {
  tool: string;
  connections: number;
  seconds: number;
  rows: HttpsBenchRow[];
  /**
   * Issue 7: portico >= 0.5x nginx req/s, p99 < 20 ms. rpsVsNginx is the
   * median of roundRatios, portico over nginx in each round (back to back).
   */
  targets: { rpsVsNginx: number | null; roundRatios?: number[]; rpsPass: boolean | null; p99Pass: boolean | null };
  table: string;
}

interface LoadResult {
  rps: number;
  p50ms: number;
  p99ms: number;
  errors: number;
  /** Requests completed in the run. */
  requests: number;
}

interface Target {
  url: string;
  /** Host header (and, for the Node generator, TLS servername). */
  host?: string;
  ca?: Buffer;
}

// ---- load generators ----

function msOf(s: string | undefined): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(s ?? '');
  if (!m) return Number.NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

async function runWrk(t: Target, connections: number, seconds: number): Promise<LoadResult> {
  const bin = which('wrk')!;
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '--latency'];
  if (t.host) args.push('-H', `Host: ${t.host}`);
  const p = spawnTracked(bin, [...args, t.url]);
  const code = await p.exited;
  const out = p.output();
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (code !== 0 || !rps) throw new Error(`wrk exited ${code}: ${out.slice(-300)}`);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const sockErrs = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? Math.round(Number(rps[1]) * seconds));
  return { requests, rps: Number(rps[1]), p50ms: msOf(/\s50%\s+(\S+)/.exec(out)?.[1]), p99ms: msOf(/\s99%\s+(\S+)/.exec(out)?.[1]), errors: non2xx + sockErrs };
}

/** N keep-alive connections, each sending the next request when the last answer ended. */
async function runNode(t: Target, connections: number, seconds: number): Promise<LoadResult> {
  const u = new URL(t.url);
  const secure = u.protocol === 'https:';
  const agent = secure ? new https.Agent({ keepAlive: true, maxSockets: connections, ca: t.ca }) : new http.Agent({ keepAlive: true, maxSockets: connections });
  const hist = new Histogram();
  let errors = 0;
  let done = 0;
  const end = Date.now() + seconds * 1000;
  const one = () =>
    new Promise<void>((resolve) => {
      const start = process.hrtime.bigint();
      const req = (secure ? https : http).request(
        { host: u.hostname, port: u.port, path: u.pathname, agent, headers: t.host ? { host: t.host } : {}, ...(secure && t.host ? { servername: t.host } : {}) },
        (res) => {
          res.on('data', () => undefined);
          res.on('end', () => {
            if (res.statusCode !== 200) errors++;
            hist.record(Number(process.hrtime.bigint() - start));
            done++;
            resolve();
          });
        },
      );
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end();
    });
  const began = Date.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (Date.now() < end) await one();
    }),
  );
  const took = (Date.now() - began) / 1000;
  agent.destroy();
  return { requests: done, rps: done / took, p50ms: hist.percentile(50) / 1e6, p99ms: hist.percentile(99) / 1e6, errors };
}

// ---- the nginx TLS reference ----

async function startNginxTls(listenPort: number, originPort: number, cert: string, key: string): Promise<{ pid: number | undefined; stop(): Promise<void> }> {
  assertLoopback(ORIGIN_HOST);
  const bin = which('nginx');
  if (!bin) throw new Error('nginx not installed');
  const dir = makeTempDir('nginx-tls');
  mkdirSync(path.join(dir, 'tmp'));
  writeFileSync(
    path.join(dir, 'nginx.conf'),
    `${nginxConfHead(dir)}
  keepalive_requests 100000;
  upstream origin { server ${ORIGIN_HOST}:${originPort}; keepalive 128; }
  server {
    listen 127.0.0.1:${listenPort} ssl backlog=4096;
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
      proxy_buffering off;
    }
  }
}
`,
  );
  const p = spawnTracked(bin, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log')]);
  await waitForPort('127.0.0.1', listenPort, 10_000, 'nginx TLS');
  return {
    pid: p.child.pid,
    stop: async () => {
      await stopChild(p);
      removeTempDir(dir);
    },
  };
}

// ---- the run ----

/** Runs load against t while metering the given processes; the row gets CPU µs per request. */
async function measured(load: (t: Target) => Promise<LoadResult>, t: Target, pids: Record<string, () => number>): Promise<LoadResult & { cpuUs: Record<string, number> }> {
  const meter = cpuMeter(pids);
  const r = await load(t);
  const used = meter();
  const cpuUs = Object.fromEntries(Object.entries(used).map(([k, s]) => [k, r.requests > 0 ? (s * 1e6) / r.requests : Number.NaN]));
  return { ...r, cpuUs };
}

function cpuNote(cpuUs: Record<string, number> | undefined): string {
  return cpuUs ? Object.entries(cpuUs).map(([k, v]) => `${k} ${Number.isFinite(v) ? v.toFixed(1) : '—'}`).join(', ') : '';
}

/** A path being measured: its target, the processes whose CPU is metered, and how to stop it. */
interface Contender {
  path: 'nginx' | 'node' | 'noderaw' | 'portico';
  label: string;
  target: Target;
  pids: Record<string, () => number>;
  runs: Array<LoadResult & { cpuUs: Record<string, number> }>;
  error?: string;
}

/** The middle value (the lower middle for an even count). */
function median(xs: number[]): number {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : Number.NaN;
}

export async function benchHttpsProxy(
  opts: { seconds?: number; connections?: number; forceNode?: boolean; onlyPortico?: boolean; reps?: number; log?: (s: string) => void } = {},
): Promise<HttpsBenchResult> {
  const seconds = opts.seconds ?? 10;
  const connections = opts.connections ?? 50;
  const rounds = Math.max(1, opts.reps ?? 1);
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const useWrk = !opts.forceNode && which('wrk') !== null;
  const tool = useWrk ? 'wrk -t1 (keep-alive)' : 'node keep-alive generator';
  const load = (t: Target) => (useWrk ? runWrk(t, connections, seconds) : runNode(t, connections, seconds));
  const warm = (t: Target) => (useWrk ? runWrk(t, connections, 2) : runNode(t, connections, 2));
  const rows: HttpsBenchRow[] = [];
  const stops: Array<() => Promise<void>> = [];
  const certDir = makeTempDir('https-bench-certs');
  const contenders: Contender[] = [];
  /** Per round: portico's req/s over nginx's, measured back to back. */
  const roundRatios: number[] = [];
  try {
    const originPort = await freePort(ORIGIN_HOST);
    const origin = await startNginxOrigin(ORIGIN_HOST, originPort);
    stops.push(() => origin.stop());

    if (!opts.onlyPortico) {
      log(`https bench: direct origin (${nginxVersion()})`);
      const directT: Target = { url: `http://${ORIGIN_HOST}:${originPort}/4k` };
      await warm(directT);
      rows.push({ path: 'direct', label: 'origin direct (HTTP)', ...(await load(directT)) });

      const dev = await ensureDevCerts(certDir, 'localhost', 'connect01.localhost');
      const cert = path.join(certDir, 'relay.crt');
      const key = path.join(certDir, 'relay.key');
      /** One TLS reference: start it on a free port; it is measured in the rounds below. */
      const reference = async (row: 'nginx' | 'node' | 'noderaw', label: string, start: (port: number) => Promise<{ cpu(): number; stop(): Promise<void> }>): Promise<void> => {
        const c: Contender = { path: row, label, target: { url: '' }, pids: {}, runs: [] };
        contenders.push(c);
        try {
          const port = await freePort();
          const ref = await start(port);
          stops.push(() => ref.stop());
          c.target = { url: `https://127.0.0.1:${port}/4k`, host: 'bench.secure.localhost', ca: Buffer.from(dev.ca) };
          c.pids = { [row]: ref.cpu };
        } catch (err) {
          c.error = (err as Error).message;
        }
      };
      await reference('nginx', 'nginx TLS + proxy_pass', async (port) => {
        const n = await startNginxTls(port, originPort, cert, key);
        return { cpu: () => cpuSecondsWithChildren(n.pid), stop: n.stop };
      });
      await reference('node', 'Node https + http.request, no tunnel', async (port) => {
        const n = await startNodeHttpsProxy(port, ORIGIN_HOST, originPort, cert, key);
        return { cpu: () => cpuSeconds(n.pid), stop: n.stop };
      });
      await reference('noderaw', 'Node TLS + byte pipe, no node:http, no tunnel', async (port) => {
        const n = await startNodeHttpsProxy(port, ORIGIN_HOST, originPort, cert, key, 'raw');
        return { cpu: () => cpuSeconds(n.pid), stop: n.stop };
      });
    }

    log('https bench: portico relay + agent');
    const relay = await startWebRelay({ logLevel: 'warn' });
    stops.push(async () => {
      await relay.stop();
      removeTempDir(relay.dataDir);
    });
    const server = await createServer(relay, { id: 'bench-https' });
    const agent = await startAgent(relay, server.token, { yaml: `log_level: warn\nmappings:\n  - { internal_port: ${originPort}, http: true }` });
    stops.unshift(async () => void (await agent.stop()));
    const { secure } = await httpsHostsOf(agent, originPort);
    contenders.push({
      path: 'portico',
      label: 'portico HTTPS proxy',
      target: { url: `https://127.0.0.1:${relay.ports.https}/4k`, host: secure, ca: readFileSync(relay.caPath) },
      pids: { relay: () => cpuSeconds(relay.child.pid), agent: () => cpuSeconds(agent.child.pid) },
      runs: [],
    });

    // Every path runs once per round, back to back, so a machine that slows down for a minute
    // (these are shared) moves all of them, not one; each row is its median run.
    const live = contenders.filter((c) => c.error === undefined);
    for (const c of live) await warm(c.target);
    for (let round = 1; round <= rounds; round++) {
      const byPath: Partial<Record<Contender['path'], number>> = {};
      for (const c of live) {
        const r = await measured(load, c.target, c.pids);
        c.runs.push(r);
        byPath[c.path] = r.rps;
        log(`  ${c.path} round ${round}/${rounds}: ${fmt(r.rps)} req/s, p99 ${fmt(r.p99ms)} ms; CPU µs/req ${cpuNote(r.cpuUs)}`);
      }
      if (byPath.nginx && byPath.portico) roundRatios.push(byPath.portico / byPath.nginx);
    }
    for (const c of contenders) {
      if (c.error !== undefined || c.runs.length === 0) {
        rows.push({ path: c.path, label: c.label, rps: Number.NaN, p50ms: Number.NaN, p99ms: Number.NaN, errors: 0, note: c.error ?? 'not measured' });
        continue;
      }
      const mid = median(c.runs.map((r) => r.rps));
      const run = c.runs.find((r) => r.rps === mid)!;
      rows.push({ path: c.path, label: c.label, ...run });
    }
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    removeTempDir(certDir);
  }
  const get = (p: HttpsBenchRow['path']) => rows.find((r) => r.path === p);
  const portico = get('portico');
  const rpsVsNginx = roundRatios.length > 0 ? median(roundRatios) : null;
  const targets = {
    rpsVsNginx,
    roundRatios,
    rpsPass: rpsVsNginx === null ? null : rpsVsNginx >= 0.5,
    p99Pass: portico && Number.isFinite(portico.p99ms) ? portico.p99ms < 20 : null,
  };
  return { tool, connections, seconds, rows, targets, table: renderHttpsTable(rows, targets, tool, connections) };
}

function fmt(v: number, digits = 2): string {
  if (!Number.isFinite(v)) return '—';
  return v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(digits);
}

export function renderHttpsTable(rows: HttpsBenchRow[], targets: HttpsBenchResult['targets'], tool: string, connections: number): string {
  const direct = rows.find((r) => r.path === 'direct');
  const nginx = rows.find((r) => r.path === 'nginx');
  const ratio = (a: number, b: HttpsBenchRow | undefined) => (b && Number.isFinite(a) && Number.isFinite(b.rps) && b.rps > 0 ? `${(a / b.rps).toFixed(2)}×` : '—');
  const lines = [
    `HTTPS request/response, 4 KiB body, ${connections} keep-alive connections, ${tool}`,
    '',
    '| path | req/s | vs direct | vs nginx TLS | p50 ms | p99 ms | CPU µs/req | errors |',
    '|---|---:|---:|---:|---:|---:|---|---:|',
    ...rows.map((r) => `| ${r.label} | ${fmt(r.rps)} | ${ratio(r.rps, direct)} | ${ratio(r.rps, nginx)} | ${fmt(r.p50ms)} | ${fmt(r.p99ms)} | ${cpuNote(r.cpuUs) || '—'} | ${r.errors}${r.note ? ` (${r.note})` : ''} |`),
    '',
    `target (issue 7): portico ≥ 0.5× nginx req/s: ${targets.rpsPass === null ? 'n/a' : targets.rpsPass ? 'PASS' : 'FAIL'}${targets.rpsVsNginx !== null ? ` (${targets.rpsVsNginx.toFixed(2)}×${(targets.roundRatios?.length ?? 0) > 1 ? `, the median of ${targets.roundRatios!.length} rounds: ${targets.roundRatios!.map((r) => `${r.toFixed(2)}×`).join(', ')}` : ''})` : ''}; p99 < 20 ms: ${targets.p99Pass === null ? 'n/a' : targets.p99Pass ? 'PASS' : 'FAIL'}`,
  ];
  return lines.join('\n');
}

const isMain = process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
  benchHttpsProxy({
    seconds: Number(arg('seconds') ?? 10),
    connections: Number(arg('connections') ?? 50),
    forceNode: process.argv.includes('--node'),
    onlyPortico: arg('only') === 'portico',
    reps: Number(arg('reps') ?? 1),
  })
    .then(async (r) => {
      process.stdout.write(`${r.table}\n`);
      await cleanupAll();
      process.exit(0);
    })
    .catch(async (err: Error) => {
      process.stderr.write(`https bench failed: ${err.stack ?? err.message}\n`);
      await cleanupAll();
      process.exit(1);
    });
}
