// Memory per open stream (issue 7: <= window + 64 KiB): real relay and agent
// processes, N streams whose far end stops reading while the near end keeps
// sending, so every stream holds as much as flow control lets it:
//   service→client  the app streams to a client that never reads: the relay
//                   holds what the agent sent within the stream window
//   client→service  a client streams to an app that never reads: the agent
//                   holds it
// RSS growth of the holding process per stream (over the last three quarters
// of the streams, once the first quarter paid the one-off growth), against the stream window
// (tunnel.stream_window / stream_window, 4 MiB by default) + 64 KiB. Senders
// write one shared buffer and stop by themselves at CAP bytes per stream.
//   node dist/test/bench/stream-memory.js [--streams=32]
// Exports runStreamMemory() for run.ts. Loopback only.
import net from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCluster, TARGET_HOST } from '../helpers/cluster.js';
import { assertLoopback } from './peers/proc.js';
import { rss } from '../helpers/proc-mem.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** The default stream window of relay and agent (shared/mux/constants.ts). */
const WINDOW = 4 * MiB;
const BOUND = WINDOW + 64 * KiB;
/** A sender stops after this much even if nothing pushes back (it always should). */
const CAP = 64 * MiB;
const CHUNK = Buffer.alloc(64 * KiB, 0x5a);

export interface StreamMemoryRow {
  direction: 'service→client' | 'client→service';
  /** The process that holds the data. */
  holder: 'relay' | 'agent';
  /** Streams measured (after the warm-up quarter). */
  streams: number;
  /** RSS growth of the holder and the other process, per stream, bytes. */
  perStream: { relay: number; agent: number };
  /** Bytes the senders got into the tunnel, per stream (median). */
  sentPerStream: number;
  pass: boolean;
}

export interface StreamMemoryResult {
  window: number;
  bound: number;
  rows: StreamMemoryRow[];
}


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Highest reading once RSS stopped rising (no new high for 1.5 s, at most 20 s). */
async function plateau(pid: number): Promise<number> {
  let high = rss(pid);
  let since = Date.now();
  const deadline = Date.now() + 20_000;
  while (Date.now() - since < 1_500 && Date.now() < deadline) {
    await sleep(250);
    const v = rss(pid);
    if (v > high + 256 * KiB) {
      high = v;
      since = Date.now();
    }
  }
  return high;
}

/** Writes CHUNK until CAP or the peer goes away, waiting for 'drain'; counts what was accepted. */
function flood(s: net.Socket, sent: { n: number }): void {
  const more = (): void => {
    while (sent.n < CAP && !s.destroyed) {
      sent.n += CHUNK.length;
      if (!s.write(CHUNK)) {
        s.once('drain', more);
        return;
      }
    }
  };
  more();
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

export async function runStreamMemory(streams = 32): Promise<StreamMemoryResult> {
  assertLoopback(TARGET_HOST);
  const c = await startCluster({ relay: { logLevel: 'warn' }, agent: { args: ['--log-level', 'warn'] } });
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.once('close', () => sockets.delete(s));
    return s;
  };
  const pids = { relay: c.relay.child.pid!, agent: c.agent.child.pid! };
  const rows: StreamMemoryRow[] = [];
  try {
    const sourcePort = c.server.ports[0]!;
    const stuckPort = c.server.ports[1]!;
    const sourceSent: Array<{ n: number }> = [];
    // The app side: one service that streams to every client, one that never reads.
    const source = net.createServer((s) => {
      track(s);
      const sent = { n: 0 };
      sourceSent.push(sent);
      flood(s, sent);
    });
    const stuck = net.createServer({ pauseOnConnect: true }, (s) => void track(s));
    for (const [srv, port] of [[source, sourcePort], [stuck, stuckPort]] as const) {
      servers.push(srv);
      await new Promise<void>((r) => srv.listen(port, TARGET_HOST, r));
    }

    const phase = async (direction: StreamMemoryRow['direction']): Promise<void> => {
      const holder = direction === 'service→client' ? 'relay' : 'agent';
      const other = holder === 'relay' ? 'agent' : 'relay';
      const clientSent: Array<{ n: number }> = [];
      const clients: net.Socket[] = [];
      const open = async (n: number): Promise<{ relay: number; agent: number }> => {
        for (let i = 0; i < n; i++) {
          const port = direction === 'service→client' ? sourcePort : stuckPort;
          const s = track(net.connect({ host: '127.0.0.1', port }));
          clients.push(s);
          await new Promise((r) => s.once('connect', r));
          if (direction === 'service→client') s.pause();
          else {
            const sent = { n: 0 };
            clientSent.push(sent);
            flood(s, sent);
          }
        }
        const high = { relay: 0, agent: 0 };
        high[holder] = await plateau(pids[holder]);
        high[other] = rss(pids[other]);
        return high;
      };
      // Marginal cost, like idle-agents.ts: the first quarter of the streams
      // pays the one-off growth (heap, slabs, code paths); the rest is measured.
      const warm = Math.max(1, Math.floor(streams / 4));
      const measured = streams - warm;
      const before = await open(warm);
      const high = await open(measured);
      const sent = direction === 'service→client' ? sourceSent.splice(0) : clientSent;
      const per = { relay: Math.max(0, high.relay - before.relay) / measured, agent: Math.max(0, high.agent - before.agent) / measured };
      rows.push({ direction, holder, streams: measured, perStream: per, sentPerStream: median(sent.map((x) => x.n)), pass: per[holder] <= BOUND });
      for (const s of clients) s.destroy();
      for (const s of [...sockets]) s.destroy();
      await sleep(500);
    };
    await phase('service→client');
    await phase('client→service');
  } finally {
    for (const s of sockets) s.destroy();
    for (const srv of servers) srv.close();
    await c.stop();
  }
  return { window: WINDOW, bound: BOUND, rows };
}

export function streamMemoryTable(r: StreamMemoryResult): string {
  const mib = (b: number) => `${(b / MiB).toFixed(2)} MiB`;
  return [
    `| memory per open stream (far end not reading; ${r.rows[0]?.streams ?? 0} streams measured after a warm-up quarter) | holds it | RSS growth per stream: relay / agent | sent into the tunnel per stream | result (≤ window ${mib(r.window)} + 64 KiB) |`,
    '|---|---|---:|---:|---|',
    ...r.rows.map((x) => `| ${x.direction} | ${x.holder} | ${mib(x.perStream.relay)} / ${mib(x.perStream.agent)} | ${mib(x.sentPerStream)} | ${x.pass ? 'PASS' : 'FAIL'} |`),
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const arg = process.argv.find((a) => a.startsWith('--streams='));
  runStreamMemory(arg ? Number(arg.slice(10)) : 32).then(
    (r) => {
      console.log(streamMemoryTable(r));
      process.exit(0);
    },
    (err: Error) => {
      console.error(err);
      process.exit(1);
    },
  );
}
