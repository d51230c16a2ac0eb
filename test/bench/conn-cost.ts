// Cost of a new connection through the tunnel, sealed data path against the
// TLS mux, in alternating runs: wrk with Connection: close against nginx
// behind the agent (the "new connections" measure), req/s and the
// relay's and agent's CPU µs per connection, read from /proc.
//   node dist/test/bench/conn-cost.js [--seconds=6] [--reps=2] [--connections=50]
// Loopback only; needs nginx and wrk.
import { startCluster, TARGET_HOST } from '../helpers/cluster.js';
import { cpuSeconds } from './load/proc-cpu.js';
import { nginxWrkMissing, runWrkClose, startNginxOrigin } from './load/nginx-wrk.js';

function arg(name: string, def: string): string {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : def;
}

async function main(): Promise<void> {
  const missing = nginxWrkMissing();
  if (missing) throw new Error(missing);
  const seconds = Number(arg('seconds', '6'));
  const reps = Number(arg('reps', '2'));
  const connections = Number(arg('connections', '50'));
  const modes = [
    { name: 'sealed', tunnel: '' },
    { name: 'mux', tunnel: 'sealed_data: false' },
  ];
  const clusters = await Promise.all(modes.map((m) => startCluster({ relay: { logLevel: 'warn', ...(m.tunnel ? { tunnel: m.tunnel } : {}) } })));
  const origins = await Promise.all(clusters.map((c) => startNginxOrigin(TARGET_HOST, c.server.ports[0]!)));
  try {
    for (let r = 0; r < reps; r++) {
      for (const [i, m] of modes.entries()) {
        const c = clusters[i]!;
        const before = { relay: cpuSeconds(c.relay.child.pid), agent: cpuSeconds(c.agent.child.pid) };
        const res = await runWrkClose({ host: '127.0.0.1', port: c.server.ports[0]!, seconds, connections });
        const n = res.requests || 1;
        const relayUs = ((cpuSeconds(c.relay.child.pid) - before.relay) / n) * 1e6;
        const agentUs = ((cpuSeconds(c.agent.child.pid) - before.agent) / n) * 1e6;
        process.stdout.write(`${m.name.padEnd(6)} rep ${r + 1}: ${Math.round(res.perSec).toLocaleString('en-US')} conn/s, CPU µs/conn relay ${relayUs.toFixed(1)} agent ${agentUs.toFixed(1)}, non-2xx ${res.non2xx}, socket errors ${res.socketErrors ?? "none"}\n`);
      }
    }
  } finally {
    await Promise.all(origins.map((o) => o.stop()));
    await Promise.all(clusters.map((c) => c.stop()));
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
