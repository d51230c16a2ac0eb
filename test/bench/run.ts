// Portico benchmark: the tunnel side by side with direct loopback, socat and
// ssh -R (chacha20-poly1305 and aes128-gcm), in one run, one table.
//   npm run bench                 full run (~17 min)
//   node dist/test/bench/run.js --quick          (~90 s)
//   node dist/test/bench/run.js --only=direct,ssh,portico
// Installs nothing: uses iperf3, socat, sshd/ssh, nginx and wrk when present
// and says which comparisons it skipped and why. Loopback (127.0.0.0/8) only.
// Writes bench-results/latest.json.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { direct } from './peers/direct.js';
import { socat } from './peers/socat.js';
import { startSocatChain } from './peers/socat-chain.js';
import { sshAes, sshDefault } from './peers/ssh-r.js';
import { portico, LOCAL_HOST } from './peers/portico.js';
import { cleanupAll, freePort, isStopping, sleep, spawnTracked, stopChild, which } from './peers/proc.js';
import type { Forward, PathAdapter, PathInstance } from './peers/types.js';
import { iperf3Path, iperf3Version, runIperf3, startIperf3Server } from './load/iperf3.js';
import { download, upload, type ThroughputResult } from './load/throughput.js';
import { pacedLatency } from './load/latency.js';
import { connRate } from './load/connrate.js';
import { nginxVersion, nginxWrkMissing, runWrkClose, startNginxOrigin } from './load/nginx-wrk.js';
import { HOP_FLOOR, NATIVE_TLS, NODE_TLS, SEALED, TUNNEL, hopFloorLine, judgeTargets, renderTable, tlsPipeLines, type Column, type Row } from './table.js';
import { nodeTlsPipe } from './peers/node-tls-pipe.js';
import { socatTls } from './peers/socat-tls.js';
import { sealedPipe } from './peers/sealed-pipe.js';
import { runStreamMemory, streamMemoryTable } from './stream-memory.js';
import { benchHttpsProxy } from './https-proxy.js';
import { runUdpBench, udpTable } from './udp.js';
import { idleAgentsTable, runIdleAgents } from './idle-agents.js';
import { cpuTimes, stealPercent } from './steal.js';

/** Stolen CPU time above which the run's figures are flagged. */
const STEAL_WARN_PERCENT = 5;

const here = path.dirname(fileURLToPath(import.meta.url)); // dist/test/bench
const repoRoot = path.resolve(here, '../../..');
const MiB = 1024 * 1024;

interface Options {
  quick: boolean;
  only: string[] | null;
  node: boolean; // force the Node throughput generators even with iperf3
  out: string;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { quick: false, only: null, node: false, out: path.join(repoRoot, 'bench-results/latest.json') };
  for (const a of argv) {
    if (a === '--quick') o.quick = true;
    else if (a.startsWith('--only=')) o.only = a.slice(7).split(',').map((s) => s.trim()).filter(Boolean);
    else if (a === '--node-throughput') o.node = true;
    else if (a.startsWith('--out=')) o.out = path.resolve(a.slice(6));
    else if (a === '--help' || a === '-h') {
      process.stdout.write(
        'usage: node dist/test/bench/run.js [--quick] [--only=direct,socat,ssh,ssh-aes,portico] [--node-throughput] [--out=FILE]\n',
      );
      process.exit(0);
    } else {
      process.stderr.write(`unknown argument ${a} (try --help)\n`);
      process.exit(2);
    }
  }
  return o;
}

interface Plan {
  tpSeconds: number;
  tpReps: number; // repetitions of the 1- and 8-stream rows (median): the 8-stream target compares the two
  omit: number;
  reverse: boolean;
  latSeconds: number;
  connSeconds: number;
  reps: number; // latency and conn-rate repetitions (median)
  warmup: number;
  wrkSeconds: number;
  pauseMs: number;
}

const FULL: Plan = {
  tpSeconds: 10,
  tpReps: 3,
  omit: 1,
  reverse: true,
  latSeconds: 5,
  connSeconds: 5,
  reps: 3,
  warmup: 0.5,
  wrkSeconds: 10,
  pauseMs: 500,
};
const QUICK: Plan = {
  tpSeconds: 1,
  tpReps: 1,
  omit: 0,
  reverse: false,
  latSeconds: 1,
  connSeconds: 1,
  reps: 1,
  warmup: 0.2,
  wrkSeconds: 0, // the HTTP row is full-run only
  pauseMs: 100,
};

interface Live {
  adapter: PathAdapter;
  inst: PathInstance;
  fw: { iperf?: Forward; echo: Forward; source: Forward; sink: Forward; http?: Forward };
}

const t0 = Date.now();
function log(msg: string): void {
  process.stderr.write(`bench ${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s: ${msg}\n`);
}

function median(xs: number[]): number | undefined {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
}

/** A throughput-only reference path (the Node or socat TLS pipe): forwards for iperf3 (or the Node generators' source and sink). */
async function openTpRef(adapter: PathAdapter, tp: { iperf: number; echo: number; source: number; sink: number }, haveIperf: boolean): Promise<Live> {
  const why = await adapter.available();
  if (why) throw new Error(why);
  const inst = await adapter.open({ targetHost: LOCAL_HOST });
  try {
    const fwd = (p: number): Promise<Forward> => inst.start({ targetHost: LOCAL_HOST, targetPort: p });
    const [echo, source, sink, iperf] = await Promise.all([fwd(tp.echo), fwd(tp.source), fwd(tp.sink), haveIperf ? fwd(tp.iperf) : undefined]);
    const l: Live = { adapter, inst, fw: { echo, source, sink } };
    if (iperf) l.fw.iperf = iperf;
    // Like every column: bytes through it must come back intact before its rate means anything.
    await smoke(echo);
    return l;
  } catch (e) {
    await inst.stop();
    throw e;
  }
}

/**
 * Round-trip 256 KiB of random bytes through the echo forward; throws on any
 * difference. A timeout gets one more try on a fresh connection: in a slow
 * phase of the machine a just-started `ssh -R` forward once missed the
 * 10 s and its column was dropped from a full run.
 */
async function smoke(f: Forward): Promise<void> {
  try {
    await smokeOnce(f);
  } catch (e) {
    if ((e as Error).message !== SMOKE_TIMEOUT) throw e;
    log(`smoke test through ${f.host}:${f.port} timed out; trying once more`);
    try {
      await smokeOnce(f);
    } catch (e2) {
      throw new Error(`${(e2 as Error).message} (twice)`);
    }
  }
}

const SMOKE_TIMEOUT = 'smoke test timed out';

async function smokeOnce(f: Forward): Promise<void> {
  const payload = randomBytes(256 * 1024);
  const want = createHash('sha256').update(payload).digest('hex');
  await new Promise<void>((resolve, reject) => {
    const s = net.connect({ host: f.host, port: f.port });
    const h = createHash('sha256');
    let n = 0;
    s.setTimeout(10_000, () => s.destroy(new Error(SMOKE_TIMEOUT)));
    s.once('error', reject);
    s.once('connect', () => s.write(payload));
    s.on('data', (d: Buffer) => {
      h.update(d);
      n += d.length;
      if (n >= payload.length) {
        s.destroy();
        if (n === payload.length && h.digest('hex') === want) resolve();
        else reject(new Error(`echo returned ${n} bytes, content ${n === payload.length ? 'differs' : 'short/long'}`));
      }
    });
  });
}

function machine(): Record<string, unknown> {
  const v = (cmd: string, args: string[], stream: 'stdout' | 'stderr' = 'stdout'): string => {
    const p = which(cmd);
    if (!p) return 'absent';
    const r = spawnSync(p, args, { encoding: 'utf8', timeout: 5000 });
    return (r[stream] || r.stdout || r.stderr || '').split('\n')[0]?.trim() ?? '';
  };
  const git = (args: string[]): string =>
    spawnSync('git', args, { cwd: repoRoot, encoding: 'utf8', timeout: 5000 }).stdout?.trim() ?? '';
  const dirty = git(['status', '--porcelain', '--untracked-files=no']).split('\n').filter(Boolean).length;
  return {
    commit: `${git(['rev-parse', '--short', 'HEAD']) || '?'}${dirty ? ` (+${dirty} modified files)` : ''}`,
    cpu: os.cpus()[0]?.model ?? '?',
    cores: os.cpus().length,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    iperf3: iperf3Version(),
    socat: which('socat') ? (spawnSync('socat', ['-V'], { encoding: 'utf8' }).stdout.split('\n')[1]?.trim() ?? '?') : 'absent',
    ssh: v('ssh', ['-V'], 'stderr'),
    nginx: nginxVersion(),
    wrk: v('wrk', ['-v']),
  };
}

async function main(): Promise<void> {
  const opt = parseArgs(process.argv.slice(2));
  const plan = opt.quick ? QUICK : FULL;
  const startedAt = new Date();
  const loadStart = os.loadavg()[0] ?? 0;
  const cpuStart = cpuTimes();
  // Hard cap for the whole run: nothing here may outlive it.
  const capMs = (opt.quick ? 240 : 1800) * 1000;
  const watchdog = setTimeout(() => {
    log(`watchdog: run exceeded ${capMs / 1000} s, stopping everything`);
    void cleanupAll().finally(() => process.exit(3));
  }, capMs);
  watchdog.unref();

  const all: PathAdapter[] = [direct, socat, sshDefault, sshAes, portico];
  const known = new Set(all.map((a) => a.name));
  for (const n of opt.only ?? []) if (!known.has(n)) throw new Error(`--only: unknown path ${n} (known: ${[...known].join(', ')})`);
  const wanted = all.filter((a) => !opt.only || opt.only.includes(a.name));
  const skipped: { what: string; why: string }[] = [];

  const usable: PathAdapter[] = [];
  for (const a of wanted) {
    const why = await a.available();
    if (why) skipped.push({ what: a.label, why });
    else usable.push(a);
  }

  const haveIperf = !!iperf3Path() && !opt.node;
  if (!iperf3Path()) skipped.push({ what: 'iperf3 throughput', why: 'iperf3 not installed; throughput rows use the Node generators (slower than iperf3)' });
  else if (opt.node) skipped.push({ what: 'iperf3 throughput', why: '--node-throughput given; throughput rows use the Node generators' });
  const wrkMissing = nginxWrkMissing();
  if (wrkMissing) skipped.push({ what: 'HTTP conn/s (nginx + wrk)', why: wrkMissing });

  // 1. Portico first: it decides which target ports exist (identity mapping).
  const live: Live[] = [];
  const opened = new Map<string, PathInstance>();
  let targetPorts: number[] | null = null;
  const tunnel = usable.find((a) => a.name === 'portico');
  if (tunnel) {
    log('starting Portico relay + agent…');
    try {
      const inst = await tunnel.open({ targetHost: LOCAL_HOST });
      opened.set(tunnel.name, inst);
      targetPorts = inst.targetPorts;
      if (!targetPorts || targetPorts.length < 5) throw new Error(`Portico gave ${targetPorts?.length ?? 0} ports, need 5`);
    } catch (e) {
      skipped.push({ what: tunnel.label, why: `failed to start: ${(e as Error).message}` });
      const inst = opened.get(tunnel.name);
      opened.delete(tunnel.name);
      targetPorts = null;
      if (inst) await inst.stop().catch(() => {});
    }
  }
  const port = async (i: number): Promise<number> => targetPorts?.[i] ?? freePort(LOCAL_HOST);
  const tp = { iperf: await port(0), echo: await port(1), source: await port(2), sink: await port(3), http: await port(4) };

  // 2. Target services on 127.0.0.2, shared by every path.
  log(`target services on ${LOCAL_HOST}: ${JSON.stringify(tp)}`);
  const stops: (() => Promise<void>)[] = [];
  if (haveIperf) stops.push((await startIperf3Server(LOCAL_HOST, tp.iperf)).stop);
  const srv = spawnTracked(
    process.execPath,
    [path.join(here, 'load/servers.js'), '--host', LOCAL_HOST, '--echo', String(tp.echo), '--source', String(tp.source), '--sink', String(tp.sink), '--max-seconds', String(capMs / 1000)],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  stops.push(() => stopChild(srv));
  for (let i = 0; i < 100 && !srv.output().includes('ready'); i++) await sleep(50);
  if (!srv.output().includes('ready')) throw new Error(`target servers did not start: ${srv.output()}`);
  let haveWrk = !wrkMissing && plan.wrkSeconds > 0;
  if (!wrkMissing && !haveWrk) skipped.push({ what: 'HTTP conn/s (nginx + wrk)', why: 'full run only (--quick)' });
  if (haveWrk) {
    try {
      stops.push((await startNginxOrigin(LOCAL_HOST, tp.http)).stop);
    } catch (e) {
      haveWrk = false;
      skipped.push({ what: 'HTTP conn/s (nginx + wrk)', why: `nginx failed to start: ${(e as Error).message}` });
    }
  }

  // 3. Open every path and its forwards; smoke-test each through the echo service.
  // Started in parallel (ssh auth takes ~0.3 s per forward); kept in column order.
  const started = await Promise.all(
    usable.map(async (a): Promise<Live | null> => {
      try {
        let inst = opened.get(a.name);
        if (!inst) {
          log(`starting ${a.label}…`);
          inst = await a.open({ targetHost: LOCAL_HOST });
          opened.set(a.name, inst);
        }
        const fwd = (p: number): Promise<Forward> => (inst as PathInstance).start({ targetHost: LOCAL_HOST, targetPort: p });
        const [echo, source, sink, iperf, http] = await Promise.all([
          fwd(tp.echo),
          fwd(tp.source),
          fwd(tp.sink),
          haveIperf ? fwd(tp.iperf) : undefined,
          haveWrk ? fwd(tp.http) : undefined,
        ]);
        const l: Live = { adapter: a, inst, fw: { echo, source, sink } };
        if (iperf) l.fw.iperf = iperf;
        if (http) l.fw.http = http;
        await smoke(l.fw.echo);
        return l;
      } catch (e) {
        skipped.push({ what: a.label, why: `failed: ${(e as Error).message.slice(0, 400)}` });
        const inst = opened.get(a.name);
        opened.delete(a.name);
        if (inst) await inst.stop().catch(() => {});
        return null;
      }
    }),
  );
  for (const l of started) if (l) live.push(l);
  if (!live.length) throw new Error('no path could be started');
  log(`paths: ${live.map((l) => l.adapter.name).join(', ')}; ${opt.quick ? 'quick' : 'full'} run`);

  // 4. Measurements, interleaved across paths (rotating the order every repetition).
  const cols: Column[] = live.map((l) => ({ name: l.adapter.name, label: l.adapter.label }));
  const raw: Record<string, Record<string, unknown[]>> = {};
  const rows: Row[] = [];
  const newRow = (key: string, label: string, unit: string, kind: Row['kind']): Row => {
    const r: Row = { key, label, unit, kind, values: {}, errors: {} };
    rows.push(r);
    raw[key] = {};
    return r;
  };
  const record = (key: string, p: string, v: unknown): void => {
    ((raw[key] ??= {})[p] ??= []).push(v);
  };
  const diagnostics: Record<string, string> = {};
  const diagnose = (l: Live): void => {
    if (diagnostics[l.adapter.name] !== undefined || !l.inst.diagnose) return;
    const d = l.inst.diagnose();
    diagnostics[l.adapter.name] = d;
    log(`  ${l.adapter.name} diagnosis: ${d.split('\n').filter((x) => !x.startsWith('{')).slice(0, 2).join(' | ').slice(0, 300)}`);
  };
  const measure = async <T>(
    title: string,
    reps: number,
    fn: (l: Live) => Promise<T>,
    onResult: (l: Live, r: T) => void,
    onError: (l: Live, e: Error) => void,
    paths: Live[] = live,
  ): Promise<void> => {
    for (let rep = 0; rep < reps; rep++) {
      const order = paths.map((_, i) => paths[(i + rep) % paths.length] as Live);
      for (const l of order) {
        if (isStopping()) return;
        log(`${title}${reps > 1 ? ` (${rep + 1}/${reps})` : ''}: ${l.adapter.name}`);
        try {
          onResult(l, await fn(l));
        } catch (e) {
          log(`  ${l.adapter.name}: ${(e as Error).message}`);
          onError(l, e as Error);
          diagnose(l);
        }
        await sleep(plan.pauseMs);
      }
    }
  };

  const throughput = async (l: Live, streams: number, reverse: boolean): Promise<ThroughputResult> => {
    if (haveIperf && l.fw.iperf) {
      return runIperf3({ host: l.fw.iperf.host, port: l.fw.iperf.port, streams, seconds: plan.tpSeconds, reverse, omitSeconds: plan.omit });
    }
    return reverse
      ? download({ host: l.fw.source.host, port: l.fw.source.port, streams, seconds: plan.tpSeconds })
      : upload({ host: l.fw.sink.host, port: l.fw.sink.port, streams, seconds: plan.tpSeconds });
  };
  const tpRow = async (key: string, label: string, streams: number, reverse: boolean, reps: number, fairness?: Row, paths: Live[] = live): Promise<void> => {
    const row = newRow(key, label, 'MiB/s', 'rate');
    const per: Record<string, number[]> = {};
    const fair: Record<string, number[]> = {};
    await measure(
      label,
      reps,
      (l) => throughput(l, streams, reverse),
      (l, r) => {
        const n = l.adapter.name;
        (per[n] ??= []).push(r.bytesPerSec / MiB);
        const mean = r.perStream.length ? r.perStream.reduce((a, b) => a + b, 0) / r.perStream.length : 0;
        if (mean > 0) (fair[n] ??= []).push(Math.min(...r.perStream) / mean);
        record(key, n, { tool: r.tool, MiBps: r.bytesPerSec / MiB, seconds: r.seconds, perStreamMiBps: r.perStream.map((x) => x / MiB) });
      },
      (l, e) => {
        row.errors[l.adapter.name] = e.message;
        record(key, l.adapter.name, { error: e.message });
      },
      paths,
    );
    for (const [n, xs] of Object.entries(per)) row.values[n] = median(xs);
    if (fairness) for (const [n, xs] of Object.entries(fair)) fairness.values[n] = median(xs);
  };

  // Single stream only: the TLS pipes — two Node processes (peers/node-tls-pipe.ts) and two socat
  // processes with OpenSSL (peers/socat-tls.ts), TLS between them, no mux — and the native loop
  // sealing 64 KiB units (peers/sealed-pipe.ts), interleaved with the others; their values sit in
  // the rows under NODE_TLS / NATIVE_TLS / SEALED (not columns).
  const refs: Live[] = [];
  if (live.some((l) => l.adapter.name === TUNNEL)) {
    for (const [adapter, name] of [[nodeTlsPipe, NODE_TLS], [socatTls, NATIVE_TLS], [sealedPipe, SEALED]] as const) {
      try {
        refs.push(await openTpRef({ ...adapter, name }, tp, haveIperf));
      } catch (e) {
        skipped.push({ what: `${adapter.label} reference`, why: (e as Error).message });
      }
    }
  }
  const tp1Paths = [...live, ...refs];
  await tpRow('tp1', '1 stream, client→service', 1, false, plan.tpReps, undefined, tp1Paths);
  if (plan.reverse) await tpRow('tp1r', '1 stream, service→client', 1, true, plan.tpReps, undefined, tp1Paths);
  await Promise.all(refs.map((r) => r.inst.stop()));
  // As many runs as the single-stream row: the target compares these two, and one run against a
  // median of three lands on either side of it by the minute's drift alone.
  await tpRow('tp8', '8 streams, aggregate', 8, false, plan.tpReps);
  const fairRow: Row = { key: 'fair100', label: '100 streams, min ÷ mean stream', unit: 'ratio', kind: 'fraction', values: {}, errors: {} };
  await tpRow('tp100', '100 streams, aggregate', 100, false, 1, fairRow);
  rows.push(fairRow);

  const l50 = newRow('lat50', '1 KiB req/resp @1,000/s, p50', 'µs', 'latency');
  const l99 = newRow('lat99', '1 KiB req/resp @1,000/s, p99', 'µs', 'latency');
  const p50s: Record<string, number[]> = {};
  const p99s: Record<string, number[]> = {};
  // Latency only: socat -> socat, the hop floor of a two-forwarder path (peers/socat-chain.ts),
  // interleaved with the others; its values sit in the rows under HOP_FLOOR (not a table column).
  const floor = live.some((l) => l.adapter.name === 'socat') ? await startSocatChain({ targetHost: LOCAL_HOST, targetPort: tp.echo }).catch((e: Error) => {
    skipped.push({ what: 'latency hop floor (socat → socat)', why: e.message });
    return null;
  }) : null;
  const floorLive: Live[] = floor ? [{ adapter: { ...socat, name: HOP_FLOOR, label: 'socat → socat' }, inst: floor.inst, fw: { echo: floor.forward, source: floor.forward, sink: floor.forward } }] : [];
  await measure(
    'latency',
    plan.reps,
    (l) =>
      pacedLatency({ host: l.fw.echo.host, port: l.fw.echo.port, rate: 1000, size: 1024, seconds: plan.latSeconds, warmupSeconds: plan.warmup }),
    (l, r) => {
      (p50s[l.adapter.name] ??= []).push(r.p50us);
      (p99s[l.adapter.name] ??= []).push(r.p99us);
      l50.values[l.adapter.name] = median(p50s[l.adapter.name] ?? []);
      l99.values[l.adapter.name] = median(p99s[l.adapter.name] ?? []);
      if (r.completed < r.sent) l99.errors[l.adapter.name] = `${r.sent - r.completed} lost`;
      record('latency', l.adapter.name, r);
    },
    (l, e) => {
      l50.errors[l.adapter.name] = l99.errors[l.adapter.name] = e.message;
      record('latency', l.adapter.name, { error: e.message });
    },
    [...live, ...floorLive],
  );
  await floor?.inst.stop();

  const conn = newRow('conn', 'new conns (open + 4 KiB echo + close)', 'conn/s', 'rate');
  const cps: Record<string, number[]> = {};
  await measure(
    'conn rate',
    plan.reps,
    (l) =>
      connRate({ host: l.fw.echo.host, port: l.fw.echo.port, seconds: plan.connSeconds, concurrency: 16, size: 4096, warmupSeconds: plan.warmup }),
    (l, r) => {
      (cps[l.adapter.name] ??= []).push(r.perSec);
      conn.values[l.adapter.name] = median(cps[l.adapter.name] ?? []);
      if (r.errors) conn.errors[l.adapter.name] = `${r.errors} errors (${r.firstError ?? ''})`;
      record('conn', l.adapter.name, r);
    },
    (l, e) => {
      conn.errors[l.adapter.name] = e.message;
      record('conn', l.adapter.name, { error: e.message });
    },
  );

  if (haveWrk && plan.wrkSeconds > 0) {
    const http = newRow('http', 'HTTP new conns, wrk → nginx 4 KiB, Connection: close', 'req/s', 'rate');
    await measure(
      'wrk',
      1,
      async (l) => {
        if (!l.fw.http) throw new Error('no http forward');
        return runWrkClose({ host: l.fw.http.host, port: l.fw.http.port, seconds: plan.wrkSeconds, connections: 16 });
      },
      (l, r) => {
        http.values[l.adapter.name] = r.perSec;
        if (r.non2xx || r.socketErrors) http.errors[l.adapter.name] = `non2xx ${r.non2xx}; socket errors ${r.socketErrors ?? 0}`;
        record('http', l.adapter.name, r);
      },
      (l, e) => {
        http.errors[l.adapter.name] = e.message;
        record('http', l.adapter.name, { error: e.message });
      },
    );
  }

  // 5. Tear down (paths first, then the services they forward to).
  log('stopping…');
  await Promise.all(live.map((l) => l.inst.stop().catch((e: unknown) => log(`stop ${l.adapter.name}: ${(e as Error).message}`))));
  await Promise.all(stops.map((s) => s().catch(() => {})));
  await cleanupAll();

  // 6. Report.
  judgeTargets(rows);
  const table = renderTable(rows, cols);
  const m = machine();
  const lines: string[] = [];
  lines.push('');
  lines.push(
    `Portico benchmark (${opt.quick ? 'quick' : 'full'}) — ${startedAt.toISOString()} — commit ${String(m.commit)} — ${m.cores as number} cores ${String(m.cpu)}, ${m.memGiB as number} GiB, Linux ${String(m.kernel)}, Node ${String(m.node)}`,
  );
  lines.push(
    `throughput: ${haveIperf ? `iperf3 -J, ${plan.tpSeconds} s${plan.omit ? ` (+${plan.omit} s omitted)` : ''}` : `Node generators, ${plan.tpSeconds} s`}, 1 and 8 streams median of ${plan.tpReps}; ` +
      `latency: ${plan.latSeconds} s paced, conn rate: ${plan.connSeconds} s × 16 concurrent, each median of ${plan.reps}`,
  );
  const loadEnd = os.loadavg()[0] ?? 0;
  lines.push(`load average (1 min): ${loadStart.toFixed(2)} at start, ${loadEnd.toFixed(2)} at end`);
  if (Math.max(loadStart, loadEnd) > os.cpus().length * 0.75) {
    lines.push('WARNING: other work was using this machine\'s CPUs during the run; absolute figures and ratios are unreliable, re-run when it is idle');
  }
  const steal = stealPercent(cpuStart, cpuTimes());
  if (steal !== null) {
    lines.push(`CPU steal (time the hypervisor gave these CPUs to other guests): ${steal.toFixed(1)} % of the run`);
    if (steal > STEAL_WARN_PERCENT) lines.push(`WARNING: over ${STEAL_WARN_PERCENT} % of the CPU time was stolen by other guests; the figures measure the neighbours as much as Portico, re-run later`);
  }
  lines.push('cells: value (ratio to direct); latency cells: value (added µs over direct)');
  lines.push('');
  lines.push(table);
  const errs = rows.flatMap((r) => Object.entries(r.errors).map(([p, e]) => `  ${r.key} / ${p}: ${e.replace(/\s+/g, " ").slice(0, 240)}`));
  if (errs.length) lines.push('', 'measurement errors:', ...errs);
  for (const [p, d] of Object.entries(diagnostics)) {
    lines.push('', `${p} after its first failed measurement (full text in the JSON):`, ...d.split('\n').filter((x) => /^(relay|agent):/.test(x)).map((x) => `  ${x.slice(0, 200)}`));
  }
  if (skipped.length) lines.push('', 'skipped:', ...skipped.map((s) => `  ${s.what}: ${s.why}`));
  const floorLine = hopFloorLine(rows);
  if (floorLine) lines.push('', floorLine);
  const tlsLines = tlsPipeLines(rows);
  if (tlsLines.length) lines.push('', ...tlsLines);
  const tgt = rows.filter((r) => r.target);
  if (tgt.length && live.some((l) => l.adapter.name === 'portico')) {
    lines.push('', 'targets: ' + tgt.map((r) => `${r.key} ${r.target?.pass === null ? 'n/a' : r.target?.pass ? 'PASS' : 'FAIL'} (${r.target?.detail ?? ''})`).join('; '));
  }
  process.stdout.write(lines.join('\n') + '\n');

  // 7. The other issue-7 figures, each side by side with its own reference:
  //    HTTPS proxy vs nginx, UDP vs direct, relay memory per idle agent.
  const extras: Record<string, unknown> = {};
  if (!opt.only || opt.only.includes('portico')) {
    const section = async (name: string, fn: () => Promise<{ text: string; data: unknown }>) => {
      try {
        const r = await fn();
        extras[name] = r.data;
        process.stdout.write(`\n${r.text}\n`);
      } catch (e) {
        extras[name] = { error: (e as Error).message };
        process.stdout.write(`\n${name}: skipped (${(e as Error).message.slice(0, 300)})\n`);
      }
    };
    await section('https', async () => {
      const r = await benchHttpsProxy({ seconds: opt.quick ? 3 : 10, reps: opt.quick ? 1 : 3, log });
      return { text: `HTTPS web proxy (${r.tool}, ${r.connections} keep-alive connections, 4 KiB responses)\n${r.table}`, data: r };
    });
    await section('udp', async () => {
      const r = await runUdpBench({ quick: opt.quick, log });
      return { text: r.skipped ? `UDP: skipped (${r.skipped})` : udpTable(r), data: r };
    });
    await section('memory', async () => {
      const r = await runIdleAgents(opt.quick ? 200 : 1000);
      return { text: idleAgentsTable(r), data: r };
    });
    await section('streamMemory', async () => {
      const r = await runStreamMemory(opt.quick ? 16 : 32);
      return { text: streamMemoryTable(r), data: r };
    });
    await cleanupAll();
  }

  const report = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    mode: opt.quick ? 'quick' : 'full',
    plan,
    machine: m,
    loadAverage: { start: loadStart, end: os.loadavg()[0] ?? 0 },
    stealPercent: steal,
    paths: live.map((l) => ({ name: l.adapter.name, label: l.adapter.label, info: l.inst.info })),
    skipped,
    diagnostics,
    rows: rows.map((r) => ({ key: r.key, label: r.label, unit: r.unit, values: r.values, errors: r.errors, target: r.target ?? null })),
    raw,
    table,
    extras,
  };
  mkdirSync(path.dirname(opt.out), { recursive: true });
  writeFileSync(opt.out, JSON.stringify(report, null, 2) + '\n');
  log(`wrote ${path.relative(process.cwd(), opt.out) || opt.out}`);
  clearTimeout(watchdog);
}

main()
  .then(() => process.exit(0))
  .catch(async (e: unknown) => {
    log(`failed: ${(e as Error).stack ?? String(e)}`);
    await cleanupAll();
    process.exit(1);
  });
