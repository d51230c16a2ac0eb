// CPU cost per GiB (and throughput) of one iperf3 stream through the tunnel,
// read from /proc/<pid>/stat of each process, so optimisations can be compared
// on a shared, noisy machine where wall-clock rates swing by ±20 %.
//   node dist/test/bench/cpu-cost.js [--gib=2] [--reverse] [--streams=1] [--reps=3] [--path=portico|node-tls|ssh|ssh-aes]
// Loopback only; needs iperf3 (and sshd/ssh for the ssh paths, whose "relay"
// is every sshd process and "agent" every ssh process). Prints one line per
// repetition and the medians. node-tls is the Node TLS pipe reference
// (peers/node-tls-pipe.ts; its front process counts as relay, its back as agent).
import { contextSwitches, cpuSeconds, pidsOfComm } from './load/proc-cpu.js';
import { portico, LOCAL_HOST } from './peers/portico.js';
import { sshAes, sshDefault } from './peers/ssh-r.js';
import { nodeTlsPipe } from './peers/node-tls-pipe.js';
import { cleanupAll, freePort, spawnTracked, which } from './peers/proc.js';
import { startIperf3Server } from './load/iperf3.js';

/** Sum of `f` over all processes with this command name (the ssh paths' sshd / ssh). */
function sumOfComm(comm: string, f: (pid: number) => number): number {
  return pidsOfComm(comm).reduce((a, p) => a + f(p), 0);
}

function arg(name: string, def: string): string {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : def;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const iperf = which('iperf3');
  if (!iperf) throw new Error('iperf3 not installed');
  const gib = Number(arg('gib', '2'));
  const reps = Number(arg('reps', '3'));
  const streams = Number(arg('streams', '1'));
  const reverse = process.argv.includes('--reverse');
  const pathName = arg('path', 'portico');
  const adapter = pathName === 'ssh' ? sshDefault : pathName === 'ssh-aes' ? sshAes : pathName === 'node-tls' ? nodeTlsPipe : portico;
  const ownPids = adapter === portico || adapter === nodeTlsPipe;
  const inst = await adapter.open({ targetHost: LOCAL_HOST });
  const port = inst.targetPorts?.[0] ?? (await freePort(LOCAL_HOST));
  const srv = await startIperf3Server(LOCAL_HOST, port);
  const fwd = await inst.start({ targetHost: LOCAL_HOST, targetPort: port });
  const relayPid = inst.info.relayPid as number | undefined;
  const agentPid = inst.info.agentPid as number | undefined;
  const relayCpu = ownPids ? () => cpuSeconds(relayPid) : () => sumOfComm('sshd', cpuSeconds);
  const agentCpu = ownPids ? () => cpuSeconds(agentPid) : () => sumOfComm('ssh', cpuSeconds);
  const ctx = ownPids ? () => contextSwitches(relayPid) + contextSwitches(agentPid) : () => sumOfComm('sshd', contextSwitches) + sumOfComm('ssh', contextSwitches);
  process.stderr.write(`${adapter.label}: pids relay ${relayPid} agent ${agentPid}\n`);
  const rows: { mibs: number; relay: number; agent: number; iperfS: number; iperfC: number; ctx: number }[] = [];
  try {
    for (let r = 0; r < reps; r++) {
      const before = { relay: relayCpu(), agent: agentCpu(), s: cpuSeconds(srv.proc.child.pid), ctx: ctx() };
      const t0 = performance.now();
      const args = ['-c', fwd.host, '-p', String(fwd.port), '-n', `${gib}G`, '-P', String(streams), '-J'];
      if (reverse) args.push('-R');
      const c = spawnTracked(iperf, args);
      let cCpu = 0;
      const poll = setInterval(() => {
        const v = cpuSeconds(c.child.pid);
        if (!Number.isNaN(v)) cCpu = v;
      }, 50);
      const code = await c.exited;
      clearInterval(poll);
      let received = 0;
      try {
        received = (JSON.parse(c.stdout()) as { end?: { sum_received?: { bytes?: number } } }).end?.sum_received?.bytes ?? 0;
      } catch {
        // not JSON: failed
      }
      if (code !== 0 || received < gib * 1024 ** 3 * 0.99) {
        process.stdout.write(`rep ${r + 1}: iperf3 failed (exit ${String(code)}, ${received} bytes received): ${c.output().slice(-300)}\n`);
        continue;
      }
      const secs = (performance.now() - t0) / 1000;
      const per = (x: number) => x / gib;
      const row = {
        mibs: (gib * 1024) / secs,
        relay: per(relayCpu() - before.relay),
        agent: per(agentCpu() - before.agent),
        iperfS: per(cpuSeconds(srv.proc.child.pid) - before.s),
        iperfC: per(cCpu),
        ctx: per(ctx() - before.ctx),
      };
      rows.push(row);
      process.stdout.write(
        `rep ${r + 1}: ${row.mibs.toFixed(0)} MiB/s; CPU s/GiB relay ${row.relay.toFixed(2)} agent ${row.agent.toFixed(2)} iperf3 -s ${row.iperfS.toFixed(2)} -c ≥${row.iperfC.toFixed(2)}; context switches/GiB (tunnel processes) ${row.ctx.toFixed(0)}\n`,
      );
    }
  } finally {
    await srv.stop();
    await inst.stop();
  }
  const m = (k: keyof (typeof rows)[number]) => median(rows.map((x) => x[k]));
  process.stdout.write(
    `${adapter.label} median (${streams} stream${streams > 1 ? 's' : ''}${reverse ? ', reverse' : ''}): ${m('mibs').toFixed(0)} MiB/s; CPU s/GiB relay ${m('relay').toFixed(2)} agent ${m('agent').toFixed(2)} (sum ${(m('relay') + m('agent')).toFixed(2)}); ${m('ctx').toFixed(0)} context switches/GiB\n`,
  );
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => void cleanupAll());
