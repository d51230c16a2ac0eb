// Streaming through the HTTPS web proxy: 256 MiB down and up with sha256 at
// both ends and bounded relay memory, Range/206 and a resumed download,
// WebSocket echo of 10,000 messages + ping/pong + idling past the standard
// timeout, SSE/NDJSON events arriving as sent, and the traffic-aware idle
// timeouts (standard 1 s, streaming and download 4 s in this relay):
// 504 for a stalled handler, re-classification on response headers, the
// Host header rewrite mode.
import t from 'tap';
import https from 'node:https';
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { Readable } from 'node:stream';
import WebSocket from 'ws';
import { createServer, startAgent } from '../helpers/cluster.js';
import { caOf, httpsHostsOf, resourceSha, resourceSlice, startOrigin, startWebRelay, webRequest } from '../helpers/web.js';
import { rss } from '../helpers/proc-mem.js';

const MiB = 1024 * 1024;
const BIG = 256 * MiB;
const relay = await startWebRelay({ https: 'timeouts: { standard: 1s, streaming: 4s, download: 4s }, host_header: rewrite' });
const origin = await startOrigin();
const server = await createServer(relay, { id: 'gpu-s', owner: 'sam' });
const agent = await startAgent(relay, server.token, { yaml: `mappings:\n  - { internal_port: ${origin.port}, http: true, name: app }` });
const { secure: host } = await httpsHostsOf(agent, origin.port);
const port = relay.ports.https;
const ca = caOf(relay);

t.teardown(async () => {
  await agent.stop();
  await relay.stop();
  await origin.close();
  rmSync(relay.dataDir, { recursive: true, force: true });
});

/** Resident memory of the relay process, bytes. */
function relayRss(): number {
  return rss(relay.child.pid!);
}

function sampleRss(): { stop(): number } {
  const base = relayRss();
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, relayRss())), 100);
  return {
    stop: () => {
      clearInterval(timer);
      return peak - base;
    },
  };
}

function open(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<import('node:http').IncomingMessage> {
  return new Promise((resolve, reject) => {
    const r = https.request({ host: '127.0.0.1', port, servername: host, path, method, headers: { host, ...headers }, ca, agent: false }, resolve);
    r.on('error', reject);
    r.end();
  });
}

const bigSha = resourceSha(BIG);

t.test('256 MiB download: same sha256, bounded relay memory, survives a paused reader', async (t) => {
  const rss = sampleRss();
  const res = await open(`/file?size=${BIG}`);
  t.equal(res.statusCode, 200);
  t.equal(res.headers['content-length'], String(BIG));
  const h = createHash('sha256');
  let n = 0;
  let paused = false;
  await new Promise<void>((resolve, reject) => {
    res.on('data', (c: Buffer) => {
      h.update(c);
      n += c.length;
      if (!paused && n > 32 * MiB) {
        paused = true;
        res.pause();
        setTimeout(() => res.resume(), 1500); // a slow reader: the relay must not buffer the rest
      }
    });
    res.on('end', resolve);
    res.on('error', reject);
  });
  const grew = rss.stop();
  t.equal(n, BIG);
  t.equal(h.digest('hex'), bigSha, 'sha256 equal at both ends');
  t.ok(grew < 96 * MiB, `relay RSS grew by ${(grew / MiB).toFixed(1)} MiB for a 256 MiB body`);
});

t.test('256 MiB upload: the app hashes the same bytes', async (t) => {
  const rss = sampleRss();
  const body = await new Promise<string>((resolve, reject) => {
    const r = https.request(
      { host: '127.0.0.1', port, servername: host, path: '/upload', method: 'PUT', headers: { host, 'content-length': String(BIG), 'content-type': 'application/octet-stream' }, ca, agent: false },
      (res) => {
        let s = '';
        res.on('data', (d) => (s += d));
        res.on('end', () => resolve(s));
      },
    );
    r.on('error', reject);
    let pos = 0;
    Readable.from(
      (function* () {
        while (pos < BIG) {
          const n = Math.min(MiB, BIG - pos);
          yield resourceSlice(pos, pos + n);
          pos += n;
        }
      })(),
    ).pipe(r);
  });
  const grew = rss.stop();
  const got = JSON.parse(body) as { sha256: string; bytes: number };
  t.equal(got.bytes, BIG);
  t.equal(got.sha256, bigSha, 'sha256 equal at both ends');
  t.ok(grew < 96 * MiB, `relay RSS grew by ${(grew / MiB).toFixed(1)} MiB`);
});

t.test('Range: 206 with exactly the asked bytes; a resumed download reassembles', async (t) => {
  const size = 10 * MiB;
  const r = await webRequest(relay, host, { path: `/file?size=${size}`, headers: { range: 'bytes=1000-1999' } });
  t.equal(r.status, 206);
  t.equal(r.headers['content-range'], `bytes 1000-1999/${size}`);
  t.equal(r.headers['accept-ranges'], 'bytes');
  t.equal(r.body.length, 1000);
  t.ok(r.body.equals(resourceSlice(1000, 2000)), 'exactly bytes 1000-1999');

  // curl -C - : the first transfer dies part-way, the second asks for the rest.
  const first = await open(`/file?size=${size}`);
  const parts: Buffer[] = [];
  let got = 0;
  await new Promise<void>((resolve) => {
    first.on('data', (c: Buffer) => {
      parts.push(c);
      got += c.length;
      if (got > 3 * MiB) {
        first.destroy();
        resolve();
      }
    });
    first.on('close', resolve);
  });
  const rest = await webRequest(relay, host, { path: `/file?size=${size}`, headers: { range: `bytes=${got}-` } });
  t.equal(rest.status, 206);
  t.equal(rest.headers['content-range'], `bytes ${got}-${size - 1}/${size}`);
  const whole = createHash('sha256').update(Buffer.concat([...parts, rest.body])).digest('hex');
  t.equal(whole, resourceSha(size), 'resumed download has the same sha256');
});

t.test('WebSocket: 10,000 messages echoed in order, ping/pong, idle past the standard timeout', async (t) => {
  const ws = new WebSocket(`wss://${host}:${port}/ws`, {
    ca,
    lookup: ((_h: string, o: { all?: boolean }, cb: (...a: unknown[]) => void) => (o.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4))) as never,
  });
  const msgs: string[] = [];
  let waiter: (() => void) | null = null;
  let want = 0;
  ws.on('message', (d) => {
    msgs.push(d.toString());
    if (waiter && msgs.length >= want) waiter();
  });
  const until = (n: number) =>
    new Promise<void>((resolve) => {
      want = n;
      waiter = resolve;
      if (msgs.length >= n) resolve();
    });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  await until(1);
  t.equal(msgs[0], 'xff 127.0.0.1', 'the app saw X-Forwarded-For on the upgrade');
  const N = 10_000;
  for (let i = 0; i < N; i++) ws.send(`m${i}`);
  await until(N + 1);
  let inOrder = true;
  for (let i = 0; i < N; i++) if (msgs[i + 1] !== `m${i}`) inOrder = false;
  t.ok(inOrder, '10,000 messages back in order');
  const pong = new Promise<Buffer>((resolve) => ws.once('pong', resolve));
  ws.ping('are-you-there');
  t.equal((await pong).toString(), 'are-you-there', 'pong came back');
  await new Promise((r) => setTimeout(r, 2500)); // > standard (1 s) and streaming would not matter: WS has none
  t.equal(ws.readyState, WebSocket.OPEN, 'still open after 2.5 s idle');
  ws.send('after idle');
  await until(N + 2);
  t.equal(msgs[N + 1], 'after idle');
  ws.close();
  await new Promise((r) => ws.once('close', r));
});

async function eventTimes(path: string, headers: Record<string, string>, sep: string): Promise<{ at: number[]; text: string }> {
  const start = Date.now();
  const res = await open(path, headers);
  const at: number[] = [];
  let text = '';
  await new Promise<void>((resolve, reject) => {
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      text += d;
      const count = text.split(sep).length - 1;
      while (at.length < count) at.push(Date.now() - start);
    });
    res.on('end', resolve);
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('aborted')));
  });
  return { at, text };
}

t.test('SSE and NDJSON: each event arrives when it is sent', async (t) => {
  for (const [name, path, sep, accept] of [
    ['SSE', '/sse?n=6&gap=200', '\n\n', 'text/event-stream'],
    ['NDJSON', '/stream?n=6&gap=200&type=ndjson', '\n', 'application/x-ndjson'],
  ] as const) {
    const { at } = await eventTimes(path, { accept }, sep);
    t.equal(at.length, 6, `${name}: 6 events`);
    const gaps = at.slice(1).map((v, i) => v - at[i]!);
    // Batching shows as events arriving together (gaps near 0, a short span). One event held up
    // by a loaded machine makes one long gap and one short one, so one short gap is tolerated.
    t.ok(at[5]! - at[0]! >= 700, `${name}: the events span ${at[5]! - at[0]!} ms (sent over 1,000 ms), not batched`);
    t.ok(gaps.filter((g) => g > 100).length >= 4, `${name}: events ~200 ms apart (gaps ${gaps.join(', ')} ms)`);
  }
});

t.test('a fixed-length body sent in two halves: the first half is not held back for the second', async (t) => {
  const res = await open('/halves?half=1000&gap=400');
  t.equal(res.headers['content-length'], '2000');
  const chunks: Array<{ at: number; data: Buffer }> = [];
  await new Promise<void>((resolve, reject) => {
    res.on('data', (d: Buffer) => chunks.push({ at: Date.now(), data: d }));
    res.on('end', resolve);
    res.on('error', reject);
  });
  const body = Buffer.concat(chunks.map((c) => c.data));
  t.equal(body.toString(), 'a'.repeat(1000) + 'b'.repeat(1000));
  const firstB = chunks.findIndex((c) => c.data.includes(0x62));
  t.ok(firstB > 0, 'the halves came in separate pieces');
  t.ok(chunks[firstB]!.at - chunks[0]!.at >= 250, `the first half came ${chunks[firstB]!.at - chunks[0]!.at} ms before the second (sent 400 ms apart)`);
});

t.test('SSE idle longer than the standard timeout but shorter than the streaming one survives', async (t) => {
  const { at } = await eventTimes('/events?n=3&gap=2000&first=1500', { accept: 'text/event-stream' }, '\n\n');
  t.equal(at.length, 3, 'all 3 events arrived with 1.5-2 s of silence between them (standard is 1 s)');
});

t.test('an event stream silent for longer than the streaming timeout is cut', async (t) => {
  const start = Date.now();
  const r = await eventTimes('/events?n=2&gap=6000', { accept: 'text/event-stream' }, '\n\n').catch((e: Error) => e);
  const took = Date.now() - start;
  t.ok(r instanceof Error || r.at.length < 2, 'the stream ended before the second event');
  t.ok(took > 3500 && took < 5500, `cut after ${took} ms (streaming timeout 4 s)`);
});

t.test('a stalled handler gets 504 after the standard timeout; chat paths get the streaming one', async (t) => {
  const start = Date.now();
  const j = await webRequest(relay, host, { path: '/stall?ms=3000', headers: { accept: 'application/json' } });
  const took = Date.now() - start;
  t.equal(j.status, 504);
  const body = JSON.parse(j.body.toString());
  t.equal(body.error.code, 'TIMEOUT');
  t.match(body.error.message, new RegExp(`the app on port ${origin.port} inside gpu-s sent nothing for 1 s \\(standard idle timeout\\)`));
  t.ok(took >= 900 && took < 2500, `504 after ${took} ms`);
  const h = await webRequest(relay, host, { path: '/stall?ms=3000', headers: { accept: 'text/html' } });
  t.equal(h.status, 504);
  t.match(h.body.toString(), /<!doctype html>[\s\S]*sent nothing for 1 s/);
  const gen = await webRequest(relay, host, { path: '/api/generate?ms=2000' });
  t.equal(gen.status, 200, '/api/generate may think for 2 s (streaming timeout 4 s)');
  t.equal(gen.body.toString(), 'late\n');
});

t.test('re-classification: a response that is an attachment gets the download timeout', async (t) => {
  const r = await webRequest(relay, host, { path: '/attachment?pause=2000' });
  t.equal(r.status, 200);
  t.equal(r.body.toString(), 'part 1\npart 2\n', 'a 2 s pause inside an attachment is not cut (standard is 1 s)');
});

t.test('host_header: rewrite gives the app localhost:<port>, the original in X-Forwarded-Host', async (t) => {
  const r = await webRequest(relay, `${host}:${port}`, { path: '/echo-headers' });
  const seen = JSON.parse(r.body.toString()) as { headers: Record<string, string> };
  t.equal(seen.headers.host, `localhost:${origin.port}`);
  t.equal(seen.headers['x-forwarded-host'], `${host}:${port}`);
});
