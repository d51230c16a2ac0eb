// portico: the tunnel under test. Starts a real relay + agent through the
// lead's test/helpers/cluster.ts (node dist/cli/main.js relay|agent). The
// relay's public port P (127.0.0.1) forwards to <local-host>:P on the agent
// side (identity mapping), so target services run on 127.0.0.2 on exactly the
// allocated ports and the agent gets --local-host 127.0.0.2.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { onCleanup } from './proc.js';
import type { Forward, PathAdapter, PathInstance } from './types.js';

/**
 * The shape we rely on from test/helpers/cluster.ts, kept loose on purpose
 * (loaded at run time so this file compiles whatever state the helper is in).
 */
interface ProcLike {
  logFile?: string;
  child?: { pid?: number; exitCode: number | null; signalCode: string | null };
}
interface ClusterLike {
  relay: ProcLike & { dataDir?: string; apiUrl?: string; tunnelAddr?: string; publicHost?: string };
  server: { id: string; ports: number[]; token?: string };
  agent?: ProcLike;
  stop(): Promise<void>;
}
interface ClusterOpts {
  relay?: { logLevel?: string; perServer?: number };
  server?: Record<string, unknown>;
  agent?: { localHost?: string; args?: string[] };
}
type StartCluster = (opts?: ClusterOpts) => Promise<ClusterLike>;

const here = path.dirname(fileURLToPath(import.meta.url)); // dist/test/bench/peers
const distRoot = path.resolve(here, '../../..'); // dist
const clusterJs = path.join(distRoot, 'test/helpers/cluster.js');
const mainJs = path.join(distRoot, 'cli/main.js');

export const LOCAL_HOST = '127.0.0.2';

async function loadStartCluster(): Promise<StartCluster | string> {
  if (!existsSync(clusterJs)) return 'skipped: tunnel not built yet (no test/helpers/cluster.ts)';
  if (!existsSync(mainJs)) return 'skipped: tunnel not built yet (no dist/cli/main.js)';
  try {
    const mod = (await import(pathToFileURL(clusterJs).href)) as { startCluster?: unknown };
    if (typeof mod.startCluster !== 'function') return 'skipped: test/helpers/cluster.ts has no startCluster()';
    return mod.startCluster as StartCluster;
  } catch (e) {
    return `skipped: cannot load cluster helper: ${(e as Error).message}`;
  }
}

function describe(name: string, p: ProcLike | undefined): string {
  if (!p) return `${name}: ?`;
  const c = p.child;
  const state = !c
    ? 'state unknown'
    : c.exitCode !== null || c.signalCode !== null
      ? `EXITED (code ${String(c.exitCode)}, signal ${String(c.signalCode)})`
      : `running (pid ${String(c.pid)})`;
  let tail = '';
  if (p.logFile) {
    try {
      tail = readFileSync(p.logFile, 'utf8').slice(-1500);
    } catch {
      tail = '(log gone)';
    }
  }
  return `${name}: ${state}${tail ? `; log tail:\n${tail}` : ''}`;
}

function isIp(h: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(h);
}

export const portico: PathAdapter = {
  name: 'portico',
  label: 'Portico',
  available: async () => {
    const s = await loadStartCluster();
    return typeof s === 'string' ? s : null;
  },
  open: async (): Promise<PathInstance> => {
    const startCluster = await loadStartCluster();
    if (typeof startCluster === 'string') throw new Error(startCluster);
    const logLevel = process.env.PORTICO_BENCH_LOG_LEVEL ?? 'warn';
    const cluster = await startCluster({
      relay: { logLevel, perServer: 10 },
      agent: { localHost: LOCAL_HOST, args: ['--log-level', logLevel] },
    });
    const unregister = onCleanup(() => cluster.stop());
    const pub = cluster.relay.publicHost && isIp(cluster.relay.publicHost) ? cluster.relay.publicHost : '127.0.0.1';
    const ports = [...cluster.server.ports];
    return {
      targetPorts: ports,
      info: {
        tunnelAddr: cluster.relay.tunnelAddr,
        publicHost: pub,
        ports,
        localHost: LOCAL_HOST,
        logLevel,
        relayPid: cluster.relay.child?.pid,
        agentPid: cluster.agent?.child?.pid,
      },
      diagnose: () => [describe('relay', cluster.relay), describe('agent', cluster.agent)].join('\n'),
      start: async ({ targetHost, targetPort }): Promise<Forward> => {
        if (targetHost !== LOCAL_HOST) throw new Error(`portico path forwards to ${LOCAL_HOST}, not ${targetHost}`);
        if (!ports.includes(targetPort)) throw new Error(`port ${targetPort} is not in the server's block ${ports.join(',')}`);
        return { host: pub, port: targetPort, stop: async () => {} };
      },
      stop: async () => {
        unregister();
        await cluster.stop();
      },
    };
  },
};
