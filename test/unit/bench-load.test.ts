// The bench's measurement loops (test/bench/load/*), run against in-process
// loopback servers: what they count is what crossed the socket, a broken
// path (altered, short or missing echo) fails the measurement instead of
// producing figures, and the histogram's percentiles are within its stated
// error. A bench that mis-measures would misreport every issue-7 target.
import t, { type Test } from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import fc from 'fast-check';
import { Histogram } from '../bench/load/histogram.js';
import { parseIperf3Json } from '../bench/load/iperf3.js';
import { pacedLatency } from '../bench/load/latency.js';
import { connRate } from '../bench/load/connrate.js';
import { download, upload } from '../bench/load/throughput.js';
import { echoServer, sinkServer, sourceServer } from '../bench/load/servers.js';

async function serve(t: Test, server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as net.Server & { closeAllConnections?: () => void }).closeAllConnections?.();
      }),
  );
  return (server.address() as net.AddressInfo).port;
}

/** A server whose connections all get `onConn`; every socket is tracked and destroyed at teardown. */
function tracked(t: Test, onConn: (s: net.Socket) => void): net.Server {
  const socks = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (s) => {
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => s.destroy());
    onConn(s);
  });
  t.teardown(() => {
    for (const s of socks) s.destroy();
  });
  return server;
}

t.test('histogram: exact below 128, every value inside its bucket, buckets ≤ 1/64 wide', async (t) => {
  for (let v = 0; v < 128; v++) t.same(Histogram.bounds(Histogram.index(v)), [v, v + 1]);
  fc.assert(
    fc.property(fc.integer({ min: 128, max: 2 ** 40 }), (v) => {
      const [lo, hi] = Histogram.bounds(Histogram.index(v));
      return lo <= v && v < hi && (hi - lo) / lo <= 1 / 64;
    }),
  );
  t.pass('property holds');
});

t.test('histogram: percentiles, mean, min/max, reset', async (t) => {
  const h = new Histogram();
  t.ok(Number.isNaN(h.percentile(50)), 'empty: NaN');
  for (let i = 1; i <= 100_000; i++) h.record(i * 1000); // 1 µs .. 100 ms
  const near = (got: number, want: number) => Math.abs(got - want) / want <= 0.016;
  t.ok(near(h.percentile(50), 50_000_000), `p50 ${h.percentile(50)}`);
  t.ok(near(h.percentile(99), 99_000_000), `p99 ${h.percentile(99)}`);
  t.equal(h.percentile(100), 100_000_000, 'p100 clamps to the exact max');
  t.ok(near(h.percentile(0), 1000) && h.percentile(0) >= 1000, `p0 ${h.percentile(0)}: the min's bucket, not below the min`);
  t.equal(h.mean, 50_000_500);
  t.equal(h.count, 100_000);
  h.reset();
  t.equal(h.count, 0);
  t.ok(Number.isNaN(h.mean));
  h.record(-5);
  t.equal(h.min, 0, 'a negative sample (clock step) counts as 0');
});

t.test('iperf3 JSON: receiver-side aggregate and per-stream rates; errors named', async (t) => {
  const json = JSON.stringify({
    start: { connected: [] },
    end: {
      streams: [{ receiver: { bits_per_second: 8e9 } }, { receiver: { bits_per_second: 4e9 } }],
      sum_sent: { bits_per_second: 13e9 },
      sum_received: { bits_per_second: 12e9, seconds: 10.0004 },
    },
  });
  const r = parseIperf3Json(`warning: something\n${json}`, 0, '', 10);
  t.equal(r.bytesPerSec, 1.5e9, 'receiver sum, not the sender sum');
  t.same(r.perStream, [1e9, 0.5e9]);
  t.equal(r.seconds, 10.0004);
  t.equal(r.tool, 'iperf3');
  t.throws(() => parseIperf3Json(JSON.stringify({ error: 'unable to connect to server' }), 1, '', 10), /iperf3: unable to connect/);
  t.throws(() => parseIperf3Json('iperf3: error - control socket has closed unexpectedly', 1, 'control socket has closed', 10), /exited 1, unparsable output: control socket/);
  t.throws(() => parseIperf3Json(JSON.stringify({ end: {} }), 0, '', 10), /exited 0 without a result/);
});

t.test('latency: every request answered, percentiles ordered, a slow echo shows', async (t) => {
  const fast = await serve(t, echoServer());
  const r = await pacedLatency({ host: '127.0.0.1', port: fast, rate: 500, size: 1024, seconds: 0.4, warmupSeconds: 0.1 });
  t.equal(r.completed, r.sent, 'all answered');
  t.equal(r.sent, Math.ceil(500 * 0.5), 'rate × (seconds + warm-up) requests');
  t.ok(r.p50us > 0 && r.p50us <= r.p90us && r.p90us <= r.p99us && r.p99us <= r.maxus, JSON.stringify(r));

  // Echo each chunk 20 ms late: the measured p50 must include the delay.
  const slow = await serve(
    t,
    tracked(t, (s) => s.on('data', (d: Buffer) => setTimeout(() => s.writable && s.write(d), 20))),
  );
  const r2 = await pacedLatency({ host: '127.0.0.1', port: slow, rate: 200, size: 1024, seconds: 0.3, warmupSeconds: 0.05 });
  t.ok(r2.p50us >= 20_000 * (1 - 1 / 64), `p50 ${r2.p50us} µs ≥ 20 ms (less the histogram's bucket width)`);
});

t.test('latency: an altered echo or an early close fails the measurement', async (t) => {
  const flipping = await serve(
    t,
    tracked(t, (s) =>
      s.on('data', (d: Buffer) => {
        const c = Buffer.from(d);
        c[c.length - 1] ^= 0xff;
        s.write(c);
      }),
    ),
  );
  await t.rejects(pacedLatency({ host: '127.0.0.1', port: flipping, rate: 200, seconds: 0.2, warmupSeconds: 0 }), /echo byte mismatch/);

  let got = 0;
  const closing = await serve(
    t,
    tracked(t, (s) =>
      s.on('data', (d: Buffer) => {
        got += d.length;
        s.write(d);
        if (got >= 10 * 1024) s.destroy();
      }),
    ),
  );
  await t.rejects(pacedLatency({ host: '127.0.0.1', port: closing, rate: 200, seconds: 0.3, warmupSeconds: 0 }), /connection closed after \d+ of 60 responses/);
});

t.test('connection rate: counts correct round trips only', async (t) => {
  const echo = await serve(t, echoServer());
  const ok = await connRate({ host: '127.0.0.1', port: echo, seconds: 0.3, concurrency: 2, size: 4096, warmupSeconds: 0, maxCount: 200 });
  t.ok(ok.completed > 0, `${ok.completed} completed`);
  t.equal(ok.errors, 0);
  t.ok(ok.completed <= 200, `bounded by maxCount (${ok.completed})`);
  t.notOk(ok.firstError);

  const altered = await serve(
    t,
    tracked(t, (s) => s.on('data', (d: Buffer) => s.write(Buffer.alloc(d.length, 0x64)))),
  );
  const bad = await connRate({ host: '127.0.0.1', port: altered, seconds: 0.2, concurrency: 2, size: 4096, warmupSeconds: 0, maxCount: 50 });
  t.equal(bad.completed, 0, 'an altered echo is never a completion');
  t.ok(bad.errors > 0);
  t.match(bad.firstError, /echo byte mismatch/);

  const short = await serve(
    t,
    tracked(t, (s) => s.once('data', (d: Buffer) => s.end(d.subarray(0, 100)))),
  );
  const cut = await connRate({ host: '127.0.0.1', port: short, seconds: 0.2, concurrency: 2, size: 4096, warmupSeconds: 0, maxCount: 50 });
  t.equal(cut.completed, 0);
  t.match(cut.firstError, /short echo: 100\/4096 bytes/);
});

t.test('throughput: upload counts what the sink received; download what arrived in the window', async (t) => {
  let received = 0;
  const sink = sinkServer();
  sink.on('connection', (s: net.Socket) => s.on('data', (d: Buffer) => (received += d.length)));
  const sinkPort = await serve(t, sink);
  const up = await upload({ host: '127.0.0.1', port: sinkPort, streams: 2, seconds: 0.3 });
  t.equal(up.perStream.length, 2);
  t.ok(received > 0);
  t.equal(Math.round(up.bytesPerSec * up.seconds), received, 'rate × time = bytes the sink counted');

  const sourcePort = await serve(t, sourceServer());
  const down = await download({ host: '127.0.0.1', port: sourcePort, streams: 3, seconds: 0.3, warmupSeconds: 0.1 });
  t.equal(down.perStream.length, 3);
  t.ok(down.perStream.every((b) => b > 0), 'every stream counted');
  t.ok(down.seconds >= 0.29 && down.seconds < 1, `window ${down.seconds} s`);

  await t.rejects(upload({ host: '10.0.0.1', port: 1, streams: 1, seconds: 0.1 }), /refusing non-loopback/);
});
