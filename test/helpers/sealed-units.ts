/**
 * A JavaScript reference of the sealed unit format (native/sealed_pump.c),
 * for tests that play a peer by hand: well-formed units, and broken ones.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import net from 'node:net';
import { once } from 'node:events';
import type { Test } from 'tap';
import type { DirectionKey, PairKeys } from '../../shared/sealed/engine.js';

export const FIN = 0x8000_0000;

function iv(prefix: Buffer, counter: number): Buffer {
  const b = Buffer.alloc(12);
  prefix.copy(b, 0);
  b.writeBigUInt64BE(BigInt(counter), 4);
  return b;
}

/** One unit: word (FIN bit | length) as AAD, ciphertext, tag. */
export function sealUnit(k: DirectionKey, counter: number, payload: Buffer, fin = false): Buffer {
  const word = Buffer.alloc(4);
  word.writeUInt32BE((fin ? FIN : 0) + payload.length >>> 0);
  const c = createCipheriv('aes-128-gcm', k.key, iv(k.prefix, counter));
  c.setAAD(word);
  const body = Buffer.concat([c.update(payload), c.final()]);
  return Buffer.concat([word, body, c.getAuthTag()]);
}

/** Splits a byte stream into units and opens them; throws on a bad tag. */
export function openUnits(k: DirectionKey, bytes: Buffer): { payload: Buffer; fin: boolean; units: number } {
  const parts: Buffer[] = [];
  let off = 0;
  let counter = 0;
  let fin = false;
  while (off + 4 <= bytes.length) {
    const word = bytes.readUInt32BE(off);
    const len = word & 0x7fff_ffff;
    if (off + 4 + len + 16 > bytes.length) break;
    const d = createDecipheriv('aes-128-gcm', k.key, iv(k.prefix, counter++));
    d.setAAD(bytes.subarray(off, off + 4));
    d.setAuthTag(bytes.subarray(off + 4 + len, off + 4 + len + 16));
    parts.push(Buffer.concat([d.update(bytes.subarray(off + 4, off + 4 + len)), d.final()]));
    if (word & FIN) fin = true;
    off += 4 + len + 16;
  }
  return { payload: Buffer.concat(parts), fin, units: counter };
}

export function randomDirection(): DirectionKey {
  return { key: randomBytes(16), prefix: randomBytes(4) };
}

/** Keys for both ends of one data connection: A's up is B's down and the reverse. */
export function keyPairs(): { a: PairKeys; b: PairKeys } {
  const ab = randomDirection();
  const ba = randomDirection();
  return { a: { up: ab, down: ba }, b: { up: ba, down: ab } };
}

/**
 * A TCP connection whose two ends Node has never read (the accepted end
 * pauses on connect, the dialing end is paused before it connects): what
 * the engine can take over.
 */
export async function unreadPair(t: Test): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const a = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  a.pause();
  await once(a, 'connect');
  const [b] = await accepted;
  server.close();
  for (const s of [a, b]) s.on('error', () => undefined);
  t.teardown(async () => {
    for (const s of [a, b]) {
      if (!s.destroyed) s.destroy();
      if (!s.closed) await once(s, 'close');
    }
  });
  return [a, b];
}
