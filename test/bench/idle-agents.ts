// Relay memory per idle connected agent (issue 7: <= 150 KiB): one real relay
// process, N servers, N agents simulated in this one process (the real Agent
// class, so each is a real TLS connection + yamux session + control channel).
//   node dist/test/bench/idle-agents.js [--agents=1000]
// Prints one table; exports runIdleAgents() for run.ts.
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent } from '../../agent/agent.js';
import { createLogger } from '../../shared/logging.js';
import type { AgentConfig } from '../../shared/config/types.js';
import { freePorts, startRelay, type RelayHandle } from '../helpers/cluster.js';
import { rss } from '../helpers/proc-mem.js';

export interface IdleAgentsResult {
  agents: number;
  baselineRssMiB: number;
  connectedRssMiB: number;
  perAgentKiB: number;
  connectSeconds: number;
  target: { text: string; pass: boolean };
}


async function settleRss(pid: number): Promise<number> {
  // Take the lowest of a few readings a moment apart (GC settles).
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 400));
    best = Math.min(best, rss(pid));
  }
  return best;
}

async function pool<T>(n: number, width: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

export async function runIdleAgents(n = 1000): Promise<IdleAgentsResult> {
  // 10 ports per server, below the kernel's ephemeral range (32768+), which
  // this process's own client connections use.
  const rangeStart = 20000;
  const rangeEnd = Math.min(32767, rangeStart + n * 10 + 1000);
  if (rangeEnd - rangeStart + 1 < n * 10) throw new Error(`at most ${Math.floor((32767 - rangeStart) / 10)} agents fit below the ephemeral port range`);
  const [tunnel, api, https, http] = (await freePorts(4)) as [number, number, number, number];
  const ports = { tunnel, api, https, http, rangeStart, rangeEnd };
  const relay: RelayHandle = await startRelay({ ports, perServer: 10, logLevel: 'warn' });
  const agents: Agent[] = [];
  try {
    const tokens = await pool(n, 16, async (i) => {
      const r = await relay.api<{ data: { agent_token: string } }>('POST', '/v1/servers', { id: `idle-${i}`, ports: 10 });
      if (r.status !== 201) throw new Error(`create server ${i}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body.data.agent_token;
    });
    const pid = relay.child.pid!;
    const logger = createLogger({ name: 'bench-agent', level: 'silent', pretty: false });
    // Marginal cost: the first 10 % warm the relay up (code paths, pools, the
    // heap after the API burst), the other 90 % are measured.
    const warm = Math.max(1, Math.floor(n / 10));
    const connect = async (i: number) => {
      const config: AgentConfig = {
        relay: { host: '127.0.0.1', port: ports.tunnel },
        token: tokens[i]!,
        ca: relay.caPath,
        insecure: false,
        localHost: '127.0.0.2',
        logLevel: 'silent',
        mappings: [],
        streamWindow: 4 * 1024 * 1024,
        keepaliveInterval: 10_000,
        keepaliveTimeout: 30_000,
        maxBackoff: 2_000,
      };
      const a = new Agent(config, logger, () => undefined);
      agents.push(a);
      const online = new Promise<void>((resolve) => a.once('online', () => resolve()));
      void a.run();
      await online;
    };
    await pool(warm, 32, (i) => connect(i));
    const baseline = await settleRss(pid);
    const t0 = Date.now();
    await pool(n - warm, 32, (i) => connect(warm + i));
    const connectSeconds = (Date.now() - t0) / 1000;
    const connected = await settleRss(pid);
    const perAgentKiB = (connected - baseline) / (n - warm) / 1024;
    return {
      agents: n,
      baselineRssMiB: baseline / 2 ** 20,
      connectedRssMiB: connected / 2 ** 20,
      perAgentKiB,
      connectSeconds,
      target: { text: '<= 150 KiB per idle agent', pass: perAgentKiB <= 150 },
    };
  } finally {
    for (const a of agents) a.stop();
    await new Promise((r) => setTimeout(r, 500));
    await relay.stop();
    rmSync(relay.dataDir, { recursive: true, force: true });
  }
}

export function idleAgentsTable(r: IdleAgentsResult): string {
  return [
    '| relay memory, idle agents | value |',
    '|---|---:|',
    `| agents connected (one process, real TLS + yamux) | ${r.agents} (in ${r.connectSeconds.toFixed(1)} s) |`,
    `| relay RSS with 10 % / all connected | ${r.baselineRssMiB.toFixed(1)} MiB / ${r.connectedRssMiB.toFixed(1)} MiB |`,
    `| **RSS per idle agent** | **${r.perAgentKiB.toFixed(1)} KiB** (${r.target.text}: ${r.target.pass ? 'PASS' : 'FAIL'}) |`,
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const arg = process.argv.find((a) => a.startsWith('--agents='));
  const n = arg ? Number(arg.slice(9)) : 1000;
  runIdleAgents(n).then(
    (r) => {
      console.log(idleAgentsTable(r));
      process.exit(0);
    },
    (err: Error) => {
      console.error(err);
      process.exit(1);
    },
  );
}
