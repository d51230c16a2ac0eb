import { createServer, type Server } from 'node:net';

import t from 'tap';

import { allocateBlock, portIsFree } from '../../relay/ports/allocator.js';
import { PorticoError } from '../../shared/errors.js';

const allFree = async (): Promise<boolean> => true;
const base = { reserved: [], taken: [], bindHost: '127.0.0.1', isFree: allFree };

async function rejection(p: Promise<unknown>): Promise<PorticoError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof PorticoError) return err;
    throw err;
  }
  throw new Error('did not reject');
}

function listen(host: string, port = 0): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, host, () => resolve(s));
  });
}
const closeServer = (s: Server) => new Promise<void>((resolve) => s.close(() => resolve()));

t.test('first contiguous block', async (t) => {
  t.same(await allocateBlock({ ...base, range: { start: 20000, end: 20099 }, count: 10 }), [20000, 20001, 20002, 20003, 20004, 20005, 20006, 20007, 20008, 20009]);
  // Taken ports push the block past them.
  const taken = [20000, 20001, 20002, 20003, 20004, 20005, 20006, 20007, 20008, 20009];
  t.same(await allocateBlock({ ...base, range: { start: 20000, end: 20099 }, count: 3, taken }), [20010, 20011, 20012]);
  // A hole too small for the block is skipped, not split.
  t.same(await allocateBlock({ ...base, range: { start: 20000, end: 20099 }, count: 3, taken: [20002, 20005] }), [20006, 20007, 20008]);
  t.same(await allocateBlock({ ...base, range: { start: 20000, end: 20099 }, count: 2, taken: [20002, 20005] }), [20000, 20001], 'a hole that fits is used');
});

t.test('reserved ports are skipped', async (t) => {
  t.same(await allocateBlock({ ...base, range: { start: 20, end: 100 }, count: 4, reserved: new Set([22, 80, 443]) }), [23, 24, 25, 26]);
  t.same(await allocateBlock({ ...base, range: { start: 20, end: 30 }, count: 2, reserved: [20, 21, 22] }), [23, 24]);
  const got = await allocateBlock({ ...base, range: { start: 1, end: 10 }, count: 10, reserved: [] });
  t.equal(got.length, 10);
});

t.test('ports the host refuses are skipped; the probe runs once per port', async (t) => {
  const probed: number[] = [];
  const busy = new Set([30001, 30003]);
  const isFree = async (p: number) => {
    probed.push(p);
    return !busy.has(p);
  };
  t.same(await allocateBlock({ ...base, range: { start: 30000, end: 30010 }, count: 3, isFree }), [30004, 30005, 30006]);
  t.same(probed, [30000, 30001, 30002, 30003, 30004, 30005, 30006], 'stops probing once a block is found');
});

t.test('non-contiguous fallback only when no run exists', async (t) => {
  const taken = [40001, 40003, 40005, 40007];
  t.same(await allocateBlock({ ...base, range: { start: 40000, end: 40008 }, count: 3, taken }), [40000, 40002, 40004]);
  t.same(await allocateBlock({ ...base, range: { start: 40000, end: 40008 }, count: 5, taken }), [40000, 40002, 40004, 40006, 40008]);
});

t.test('exhaustion is POOL_EXHAUSTED with requested and available', async (t) => {
  const err = await rejection(allocateBlock({ ...base, range: { start: 40000, end: 40008 }, count: 6, taken: [40001, 40003, 40005, 40007] }));
  t.equal(err.code, 'POOL_EXHAUSTED');
  t.same(err.details, { requested: 6, available: 5 });
  t.equal(err.status, 503);
  const none = await rejection(allocateBlock({ ...base, range: { start: 50000, end: 50001 }, count: 1, reserved: [50000], taken: [50001] }));
  t.same(none.details, { requested: 1, available: 0 });
  t.equal((await rejection(allocateBlock({ ...base, range: { start: 1, end: 2 }, count: 0 }))).code, 'VALIDATION_FAILED');
  t.equal((await rejection(allocateBlock({ ...base, range: { start: 5, end: 2 }, count: 1 }))).code, 'CONFIG_INVALID');
});

t.test('a port held by a real listening socket is skipped', async (t) => {
  const holder = await listen('127.0.0.1');
  t.teardown(() => closeServer(holder));
  const held = (holder.address() as { port: number }).port;
  t.equal(await portIsFree('127.0.0.1', held), false, 'portIsFree sees the listener');

  // Find a neighbour of the held port that is free, and allocate around the held port.
  const start = held > 1024 ? held - 1 : held;
  const got = await allocateBlock({ range: { start, end: Math.min(65535, start + 40) }, count: 2, reserved: [], taken: [], bindHost: '127.0.0.1' });
  t.equal(got.length, 2);
  t.notOk(got.includes(held), `held port ${held} not allocated (got ${got.join(', ')})`);
  for (const p of got) t.equal(await portIsFree('127.0.0.1', p), true, `${p} is free again after the probe`);

  const only = await rejection(allocateBlock({ range: { start: held, end: held }, count: 1, reserved: [], taken: [], bindHost: '127.0.0.1' }));
  t.equal(only.code, 'POOL_EXHAUSTED');
});

t.test('portIsFree', async (t) => {
  const s = await listen('127.0.0.1');
  const port = (s.address() as { port: number }).port;
  t.equal(await portIsFree('127.0.0.1', port), false);
  await closeServer(s);
  t.equal(await portIsFree('127.0.0.1', port), true, 'free once closed');
  await t.rejects(portIsFree('192.0.2.1', port), 'an address not on this host is an error, not "busy"');
});
