// IdleDataConnections (shared/sealed/idle-pool.ts) on real loopback sockets
// with the engine's peek: parked connections are never read and come back
// unread; one that received a byte, ended or reset is closed when taken,
// not handed out; the idle timeout and the cap close connections; waitFor
// gets one put back later or gives up; close() empties it.
import t from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { IdleDataConnections } from '../../shared/sealed/idle-pool.js';
import { sealedEngine, sealedProblem } from '../../shared/sealed/engine.js';
import { unreadPair } from '../helpers/sealed-units.js';

const engine = sealedEngine();
const closed = (s: net.Socket) => (s.closed ? Promise.resolve() : once(s, 'close').then(() => undefined));
/** Polls until `cond` holds (a peer's bytes, end or reset reaching this socket's kernel queue), 5 s at most. */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
}

if (!engine) {
  t.test('idle data connections', { skip: `engine unavailable: ${sealedProblem()}` }, async () => undefined);
} else {
  const pool = (max = 4, idleMs = 60_000) => new IdleDataConnections({ max, idleMs, quiet: (s) => engine.quiet(s) });

  t.test('put, then take by id or any: the same socket, never read, nothing lost', async (t) => {
    const p = pool();
    const [a, b] = await unreadPair(t);
    const [c] = await unreadPair(t);
    p.put('one', a);
    p.put('two', c);
    t.equal(p.size, 2);
    const got = p.take('one');
    t.equal(got?.sock, a);
    t.equal(got?.id, 'one');
    b.write('after');
    await until(() => !engine.quiet(a));
    t.notOk(engine.quiet(a), 'the bytes wait in the kernel for the engine');
    t.equal(a.readableLength, 0, 'nothing read into Node');
    a.resume(); // (Node cannot start reading it again: the engine's sockets stay unread for good)
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 20));
    t.equal(a.readableLength, 0, 'still nothing read into Node after a resume()');
    t.equal(p.take()?.id, 'two', 'any one');
    t.equal(p.take(), undefined, 'empty');
    p.close();
  });

  t.test('a parked connection that got a byte, an end or a reset is closed when taken, not handed out', async (t) => {
    const p = pool();
    const [a, b] = await unreadPair(t);
    const [c, d] = await unreadPair(t);
    const [e, f] = await unreadPair(t);
    const [g] = await unreadPair(t);
    p.put('byte', a);
    p.put('end', c);
    p.put('reset', e);
    b.write('stray');
    d.end();
    f.resetAndDestroy();
    await until(() => !engine.quiet(a) && !engine.quiet(c) && !engine.quiet(e));
    t.equal(p.take('byte'), undefined);
    t.equal(p.take('end'), undefined);
    p.put('good', g);
    t.equal(p.take()?.id, 'good', 'take() skips (and closes) the bad one');
    await Promise.all([closed(a), closed(c), closed(e)]);
    t.equal(p.size, 0);
    p.close();
  });

  t.test('idle timeout and the cap close connections', async (t) => {
    const p = pool(1, 100);
    const [a] = await unreadPair(t);
    const [c] = await unreadPair(t);
    p.put('a', a);
    p.put('c', c);
    await closed(c);
    t.pass('over the cap: closed at once');
    const keepAlive = setTimeout(() => undefined, 5_000); // the pool's timers are unref'd
    await closed(a);
    clearTimeout(keepAlive);
    t.equal(p.size, 0, 'idle too long: closed');
    p.close();
  });

  t.test('a full pool first drops the connections the far side closed, then parks the new one', async (t) => {
    const p = pool(2);
    const [a, b] = await unreadPair(t);
    const [c] = await unreadPair(t);
    const [e] = await unreadPair(t);
    p.put('a', a);
    p.put('c', c);
    b.end(); // the relay closed its end of 'a' (over its own cap)
    await until(() => !engine.quiet(a));
    p.put('e', e);
    t.equal(p.size, 2);
    t.equal(p.take('e')?.sock, e, 'the live newcomer was kept');
    t.equal(p.take('c')?.sock, c);
    await closed(a);
    p.close();
  });

  t.test('the periodic sweep drops a parked connection the far side closed; discard() wakes a waiter', async (t) => {
    const p = new IdleDataConnections({ max: 4, idleMs: 60_000, sweepMs: 50, quiet: (s) => engine.quiet(s) });
    const [a, b] = await unreadPair(t);
    p.put('a', a);
    b.end();
    const keepAlive = setTimeout(() => undefined, 5_000); // the sweep's timer is unref'd
    await closed(a);
    clearTimeout(keepAlive);
    t.equal(p.size, 0, 'swept (no CLOSE_WAIT left until an idle timeout)');
    const w = p.waitFor('failed', 5_000);
    const started = Date.now();
    p.discard('failed');
    t.equal(await w, undefined);
    t.ok(Date.now() - started < 1_000, 'at once, not after the wait');
    p.close();
  });

  t.test('waitFor gets a connection put back later, or gives up; close() wakes waiters', async (t) => {
    const p = pool();
    const [a] = await unreadPair(t);
    const later = p.waitFor('a', 2_000);
    setTimeout(() => p.put('a', a), 30);
    t.equal(await later, a, 'put back while waited for');
    t.equal(p.size, 0, 'handed over, not parked');
    t.equal(await p.waitFor('nobody', 50), undefined, 'gives up');
    const w = p.waitFor('gone', 5_000);
    p.close();
    t.equal(await w, undefined);
    const [c] = await unreadPair(t);
    p.put('late', c);
    await closed(c);
    t.pass('a closed pool closes what is put in');
  });
}
