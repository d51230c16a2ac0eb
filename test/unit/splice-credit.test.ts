// splice from a mux stream into a socket whose reader stalls: the stream's
// buffer plus the socket's write buffer stay within one window (credit waits
// for delivery), and once the reader resumes every byte arrives, in order.
import t from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { INITIAL_STREAM_WINDOW, type MuxStream } from '../../shared/mux/index.js';
import { splice } from '../../shared/util/splice.js';
import { socketPair } from '../helpers/socket-pair.js';
import { sessionPair } from '../helpers/session-pair.js';

t.test('a stalled downstream holds at most one window in the process, then everything arrives', async (t) => {
  // The smallest window (256 KiB), at the pump's budget: without the credit hold the
  // stream buffer and the socket buffer could together hold about twice the window.
  const WINDOW = INITIAL_STREAM_WINDOW;
  const { client, server } = await sessionPair(t, {}, { maxStreamWindow: WINDOW });
  // Downstream: a TCP pair whose far end does not read at first.
  const [near, far] = await socketPair(t);
  far.pause();

  const sender = client.open();
  const [inbound] = (await once(server, 'stream')) as [MuxStream];
  splice(inbound, near);

  const total = 48 * 1024 * 1024;
  const sentHash = createHash('sha256');
  let sent = 0;
  let stop = false;
  const writer = (async () => {
    while (sent < total && !stop) {
      const b = randomBytes(Math.min(256 * 1024, total - sent));
      sentHash.update(b);
      sent += b.length;
      if (!sender.write(b)) await once(sender, 'drain');
    }
    sender.end();
  })();

  // Let the stall settle, then check the in-process bound a few times.
  let maxHeld = 0;
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setTimeout(r, 100));
    maxHeld = Math.max(maxHeld, inbound.readableLength + near.writableLength);
  }
  t.ok(sent < total, `the sender is held back (${sent} of ${total} bytes accepted)`);
  t.ok(maxHeld <= WINDOW, `stream buffer + socket buffer ${maxHeld} <= one window ${WINDOW}`);

  // Resume: all bytes arrive intact.
  const recvHash = createHash('sha256');
  let received = 0;
  let gotAll!: () => void;
  const all = new Promise<void>((r) => (gotAll = r));
  far.on('data', (d: Buffer) => {
    recvHash.update(d);
    received += d.length;
    if (received === total) gotAll();
  });
  far.resume();
  await writer;
  await all;
  t.equal(received, total, 'length');
  t.equal(recvHash.digest('hex'), sentHash.digest('hex'), 'sha256');
  stop = true;
  (far as Duplex).end();
});
