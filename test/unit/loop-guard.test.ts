// LoopGuard: a public connection from an endpoint one of our local agents dialed is a loop; the
// endpoint is forgotten when the agent's stream closes — also when it closed before the agent's
// OpenResult was processed (it used to stay remembered for ever); an accept that races a pending
// open waits for it.
import t from 'tap';
import { PassThrough } from 'node:stream';
import { once } from 'node:events';
import { LoopGuard } from '../../relay/proxies/loop-guard.js';
import type { OpenResult } from '../../proto/index.js';

const ok = (port: number): OpenResult => ({ ok: true, localAddress: '127.0.0.1', localPort: port }) as OpenResult;

t.test('an endpoint is a loop while its stream is open, and forgotten when it closes', async (t) => {
  const g = new LoopGuard();
  const stream = new PassThrough();
  g.track(8080, Promise.resolve(ok(40001)), stream);
  t.equal(await g.isLoop('127.0.0.1', 40001, 8080), true, 'the agent\'s own dial coming back is a loop');
  t.equal(await g.isLoop('::ffff:127.0.0.1', 40001, 8080), true, 'also as an IPv4-mapped address');
  t.equal(await g.isLoop('127.0.0.1', 40002, 8080), false, 'another client is not');
  stream.destroy();
  await once(stream, 'close');
  t.equal(await g.isLoop('127.0.0.1', 40001, 8080), false, 'forgotten once the stream closed');
});

t.test('a reported endpoint counts only for the port its agent dialled (a false report cannot refuse clients of other ports)', async (t) => {
  const g = new LoopGuard();
  const stream = new PassThrough();
  g.track(8080, Promise.resolve(ok(40005)), stream);
  t.equal(await g.isLoop('127.0.0.1', 40005, 8080), true, 'a connection to the dialled port is the loop');
  t.equal(await g.isLoop('127.0.0.1', 40005, 9090), false, 'the same endpoint connecting to another public port is not');
  stream.destroy();
});

t.test('a stream that closed before its OpenResult was processed leaves nothing behind', async (t) => {
  const g = new LoopGuard();
  const stream = new PassThrough();
  let settle!: (r: OpenResult) => void;
  g.track(8080, new Promise<OpenResult>((r) => (settle = r)), stream);
  stream.destroy();
  await once(stream, 'close');
  settle(ok(40003));
  await new Promise((r) => setImmediate(r));
  t.equal(await g.isLoop('127.0.0.1', 40003, 8080), false, 'not remembered: no close event will ever remove it');
  t.equal((g as unknown as { endpoints: Set<string> }).endpoints.size, 0, 'the endpoint table is empty');
});

t.test('an accept that races a pending open waits for its result', async (t) => {
  const g = new LoopGuard();
  const stream = new PassThrough();
  t.teardown(() => stream.destroy());
  let settle!: (r: OpenResult) => void;
  g.track(8080, new Promise<OpenResult>((r) => (settle = r)), stream);
  const verdict = g.isLoop('127.0.0.1', 40004, 8080);
  setTimeout(() => settle(ok(40004)), 50);
  t.equal(await verdict, true, 'the accept saw the endpoint once the open settled');
  t.equal(await g.isLoop('127.0.0.1', 40005, 9090), false, 'no pending open for another port: no wait');
});
