/**
 * Where sealed data connections meet the streams waiting for them. The
 * relay expects one per sealed stream (a random id, single use, valid
 * until the open timeout); the agent dials the tunnel port and sends the
 * preamble (shared/sealed/keys.ts). A connection is taken only when its id
 * is waited for and its proof matches that TLS session's; anything else is
 * closed (the id stays waiting for the real agent) and counted.
 */
import type net from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { PorticoError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logging.js';
import { stopReading } from '../../shared/sealed/engine.js';
import { metrics } from '../metrics.js';
import { normalizeAddress } from '../../shared/util/net.js';
import { PREAMBLE_BYTES, SEALED_ACK, SEALED_ID_BYTES, SEALED_MAGIC } from '../../shared/sealed/keys.js';

export interface Arrival {
  socket: net.Socket;
  /** Bytes read past the preamble (the first sealed units): the engine reads them first. */
  preload: Buffer;
}

interface Waiter {
  proof: Buffer;
  /** The agent's address (its tunnel's peer): data connections from there may exceed the plain cap by its waiting ids. */
  ip: string;
  resolve(a: Arrival): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class SealedRendezvous {
  private readonly waiting = new Map<string, Waiter>();

  /** Connections per IP address whose preamble has not matched yet. */
  private readonly unmatched = new Map<string, number>();
  /** Ids waiting, per agent address. */
  private readonly waitingByIp = new Map<string, number>();

  private forget(key: string): void {
    const w = this.waiting.get(key);
    if (!w) return;
    this.waiting.delete(key);
    const left = (this.waitingByIp.get(w.ip) ?? 1) - 1;
    if (left <= 0) this.waitingByIp.delete(w.ip);
    else this.waitingByIp.set(w.ip, left);
  }

  /**
   * `maxUnmatchedPerIp`: connections from one address still before their
   * preamble matched, beyond the ids waiting right now for agents at that
   * address (an agent dials one per stream the relay opened; anyone else
   * gets this many).
   */
  constructor(
    private readonly logger: Logger,
    private readonly preambleTimeoutMs: number,
    private readonly maxUnmatchedPerIp = 64,
  ) {}

  /** Waits for the data connection of `id`; `cancel()` stops waiting (the stream failed first). */
  expect(id: Buffer, proof: Buffer, timeoutMs: number, agentAddress = ''): { arrival: Promise<Arrival>; cancel(): void } {
    const key = id.toString('hex');
    const ip = normalizeAddress(agentAddress);
    let waiter!: Waiter;
    const arrival = new Promise<Arrival>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.forget(key);
        reject(new PorticoError('TIMEOUT', `the agent's data connection did not arrive within ${timeoutMs} ms`));
      }, timeoutMs);
      waiter = { proof, ip, resolve, reject, timer };
    });
    this.waiting.set(key, waiter);
    this.waitingByIp.set(ip, (this.waitingByIp.get(ip) ?? 0) + 1);
    // A caller that gave up (the stream failed) handles nothing: keep the rejection quiet.
    arrival.catch(() => undefined);
    return {
      arrival,
      cancel: () => {
        if (this.waiting.get(key) !== waiter) return;
        this.forget(key);
        clearTimeout(waiter.timer);
        waiter.reject(new PorticoError('UPSTREAM_FAILED', 'stream closed before its data connection arrived'));
      },
    };
  }

  /** A connection on the tunnel port that is not TLS: read the preamble, then match it. */
  accept(raw: net.Socket, first: Buffer, remainingMs = this.preambleTimeoutMs): void {
    const parts = [first];
    const refuse = (why: string) => {
      metrics.sealedConnections.inc({ result: 'refused' });
      this.logger.debug({ peer: `${raw.remoteAddress}:${raw.remotePort}`, reason: why }, 'sealed data connection refused');
      raw.destroy();
    };
    const ip = normalizeAddress(raw.remoteAddress);
    const count = this.unmatched.get(ip) ?? 0;
    if (count >= this.maxUnmatchedPerIp + (this.waitingByIp.get(ip) ?? 0)) {
      refuse('too many data connections from this address before their preamble');
      return;
    }
    this.unmatched.set(ip, count + 1);
    let counted = true;
    const settled = () => {
      if (!counted) return;
      counted = false;
      const left = (this.unmatched.get(ip) ?? 1) - 1;
      if (left <= 0) this.unmatched.delete(ip);
      else this.unmatched.set(ip, left);
    };
    const timer = setTimeout(() => refuse('no preamble within the handshake timeout'), remainingMs);
    raw.once('close', () => {
      clearTimeout(timer);
      settled();
    });
    const decide = (): boolean => {
      const buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      if (!buf.subarray(0, Math.min(buf.length, SEALED_MAGIC.length)).equals(SEALED_MAGIC.subarray(0, Math.min(buf.length, SEALED_MAGIC.length)))) {
        clearTimeout(timer);
        refuse('not a sealed data connection (and not TLS)');
        return true;
      }
      if (buf.length < PREAMBLE_BYTES) return false;
      clearTimeout(timer);
      const id = buf.subarray(SEALED_MAGIC.length, SEALED_MAGIC.length + SEALED_ID_BYTES);
      const proof = buf.subarray(SEALED_MAGIC.length + SEALED_ID_BYTES, PREAMBLE_BYTES);
      const key = id.toString('hex');
      const waiter = this.waiting.get(key);
      if (!waiter) {
        refuse('unknown or already used id');
        return true;
      }
      if (!timingSafeEqual(waiter.proof, proof)) {
        refuse('proof does not match the agent session');
        return true;
      }
      this.forget(key);
      clearTimeout(waiter.timer);
      settled();
      raw.setNoDelay(true); // small units (an SSH key press) go out at once, not behind a delayed ACK
      raw.write(Buffer.of(SEALED_ACK)); // the agent hands its side over only after this
      raw.setKeepAlive(true, 30_000);
      metrics.sealedConnections.inc({ result: 'accepted' });
      // Anything Node buffered after the pause belongs to the engine too (read synchronously:
      // libuv delivers nothing more before the engine takes the descriptor over).
      const rest = [buf.subarray(PREAMBLE_BYTES)];
      raw.removeAllListeners('data');
      raw.pause();
      for (let c: Buffer | null; (c = raw.read() as Buffer | null) !== null; ) rest.push(c);
      stopReading(raw); // read() may have restarted it: nothing more lands in Node's buffer
      waiter.resolve({ socket: raw, preload: Buffer.concat(rest) });
      return true;
    };
    if (decide()) return;
    const onData = (c: Buffer) => {
      parts.push(c);
      raw.pause();
      if (!decide()) raw.resume();
      else raw.off('data', onData);
    };
    raw.on('data', onData);
    raw.resume();
  }
}
