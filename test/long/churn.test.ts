// Soak (npm run test:long): connection churn through the tunnel for
// PORTICO_CHURN_SECONDS (default 600). Relay and agent RSS must stay flat
// (the last third's peak within 32 MiB of the first third's), every echo
// intact, and open streams back to zero at the end.
import t from 'tap';
import { eventually, startCluster, TARGET_HOST } from '../helpers/cluster.js';
import { exchange, startEcho } from '../helpers/targets.js';
import { rss } from '../helpers/proc-mem.js';

const SECONDS = Number(process.env.PORTICO_CHURN_SECONDS ?? 600);
const MiB = 1024 * 1024;


t.setTimeout((SECONDS + 120) * 1000);

t.test(`churn for ${SECONDS} s: memory flat, nothing lost, streams freed`, async (t) => {
  const c = await startCluster({ relay: { logLevel: 'warn' } });
  const echo = await startEcho(TARGET_HOST, c.server.ports[0]!);
  t.teardown(async () => {
    await echo.close();
    await c.stop();
  });
  const samples: { at: number; relay: number; agent: number }[] = [];
  const deadline = Date.now() + SECONDS * 1000;
  let conns = 0;
  let bad = 0;
  let nextSample = 0;
  while (Date.now() < deadline) {
    // 32 concurrent connections, each 64 KiB echoed and closed.
    const batch = await Promise.all(Array.from({ length: 32 }, () => exchange('127.0.0.1', c.server.ports[0]!, 64 * 1024)));
    conns += batch.length;
    bad += batch.filter((r) => r.received !== 64 * 1024 || r.receivedSha !== r.sentSha).length;
    if (Date.now() >= nextSample) {
      samples.push({ at: Date.now(), relay: rss(c.relay.child.pid!), agent: rss(c.agent.child.pid!) });
      nextSample = Date.now() + 2_000;
    }
  }
  t.equal(bad, 0, `${conns} connections, every echo intact`);
  const third = Math.max(1, Math.floor(samples.length / 3));
  const peak = (xs: typeof samples, k: 'relay' | 'agent') => Math.max(...xs.map((s) => s[k]));
  for (const k of ['relay', 'agent'] as const) {
    const first = peak(samples.slice(0, third), k);
    const last = peak(samples.slice(-third), k);
    t.comment(`${k} RSS peak: first third ${(first / MiB).toFixed(1)} MiB, last third ${(last / MiB).toFixed(1)} MiB over ${conns} connections`);
    t.ok(last - first < 32 * MiB, `${k} memory flat (grew ${((last - first) / MiB).toFixed(1)} MiB)`);
  }
  await eventually(async () => (await c.relay.api('GET', `/v1/servers/${c.server.id}`)).body.data.open_streams === 0, 10_000);
  t.pass('open streams back to zero');
});
