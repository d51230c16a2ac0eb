/**
 * A raw TCP connection whose bytes go over a sealed data connection
 * (docs/native-data-path.md) instead of the mux: the mux stream carries
 * the header (with a fresh id) and the agent's open-result, then stays open
 * as the connection's anchor — its reset (agent gone, stream aborted)
 * resets the pair, and each side ends it when its pair ended. The public
 * socket is handed to the native engine once the agent answered and its
 * data connection arrived; nothing in JavaScript touches the bytes.
 */
import type net from 'node:net';
import { errorCodeFromWire } from '../../shared/errors.js';
import type { Logger } from '../../shared/logging.js';
import type { SealedEngine, SealedPair } from '../../shared/sealed/engine.js';
import { newSealedId, pairKeys } from '../../shared/sealed/keys.js';
import { splice, type SpliceStats } from '../../shared/util/splice.js';
import type { SocketReader } from '../../shared/util/socket-reader.js';
import type { StreamHeader } from '../../proto/index.js';
import type { AgentSession } from '../sessions/agent-session.js';
import type { LoopGuard } from './loop-guard.js';
import type { Arrival, SealedRendezvous } from '../sealed/rendezvous.js';
import { metrics } from '../metrics.js';

export interface SealedOpen {
  sock: net.Socket;
  /** The SocketReader `sock` reads through, if it was adopted (used only if the stream falls back to the mux). */
  reader?: SocketReader;
  session: AgentSession;
  header: StreamHeader;
  engine: SealedEngine;
  rendezvous: SealedRendezvous;
  loopGuard: LoopGuard;
  logger: Logger;
  timeoutMs: number;
  /** Called once the connection ended (either way). */
  onClosed?: () => void;
}

/** Starts the connection; returns its live byte counts (client->app as aToB). */
export function openSealed(o: SealedOpen): SpliceStats {
  const { sock, session } = o;
  let pair: SealedPair | null = null;
  /** Set when the agent answered `unsealed`: the bytes ride the stream (splice's counts). */
  let viaMux: SpliceStats | null = null;
  let unsealed = false;
  const counted: SpliceStats = {
    get aToB() {
      return viaMux?.aToB ?? pair?.up ?? 0;
    },
    get bToA() {
      return viaMux?.bToA ?? pair?.down ?? 0;
    },
  };
  const id = newSealedId();
  // An idle data connection left by an earlier stream of this agent, else the agent dials a new one.
  const pooled = session.dataPool?.take();
  let wait: ReturnType<SealedRendezvous['expect']> | null = null;
  let data: (Arrival & { connId: string }) | null = null;
  const onDataClose = () => pair?.abort();
  let closed = false;
  /** `keep`: the pair ended cleanly, the data connection can serve the next stream. */
  const close = (reset: boolean, keep = false) => {
    if (closed) return;
    closed = true;
    wait?.cancel();
    if (!unsealed) o.reader?.dispose(); // (spliced: splice disposes it)
    if (reset) sock.resetAndDestroy();
    else if (!unsealed) sock.destroy(); // (spliced: already closed by splice)
    if (data) {
      data.socket.off('close', onDataClose);
      if (keep && session.dataPool && !session.closed) session.dataPool.put(data.connId, data.socket);
      else data.socket.destroy();
    }
    o.onClosed?.();
  };
  let opened;
  let secrets;
  try {
    // (The key export throws if the tunnel's TLS socket is already gone.)
    secrets = session.sealed!(id);
    if (!pooled) wait = o.rendezvous.expect(id, secrets.proof, o.timeoutMs, session.peer.remoteAddress);
    opened = session.open({ ...o.header, sealedId: id, ...(pooled ? { poolId: Buffer.from(pooled.id, 'hex') } : {}) }, o.timeoutMs);
  } catch {
    pooled?.sock.destroy();
    close(true);
    return counted;
  }
  const keys = pairKeys(secrets, 'relay');
  const arrival: Promise<Arrival & { connId: string }> = pooled
    ? Promise.resolve({ socket: pooled.sock, preload: Buffer.alloc(0), connId: pooled.id })
    : wait!.arrival.then((a) => ({ ...a, connId: id.toString('hex') }));
  const { stream } = opened;
  stream.on('error', () => undefined);
  if (session.canLoop) o.loopGuard.track(o.header.internalPort, opened.opened, stream);
  // The anchor: a reset stream (or one closed before the pair started) ends the connection.
  stream.once('close', () => {
    if (unsealed) return; // splice handles both sides
    const clean = stream.readableEnded && !stream.errored;
    if (pair) {
      if (!clean) pair.abort();
    } else close(true);
  });
  // A public socket destroyed in JavaScript (the relay stopping) takes the pair with it.
  sock.once('close', () => pair?.abort());
  // The data connection is this stream's once it is here, whatever happens to the stream.
  arrival.then(
    (a) => {
      if (closed || unsealed) {
        a.socket.destroy();
        return;
      }
      data = a;
      a.socket.once('close', onDataClose);
    },
    () => undefined,
  );
  const answered = opened.opened.then((r) => {
    if (r.ok && r.unsealed) {
      // The agent could not get a data connection: the stream carries the bytes, like any mux stream.
      unsealed = true;
      metrics.sealedConnections.inc({ result: 'unsealed' });
      wait?.cancel();
      if (pooled) pooled.sock.destroy();
      if (data) {
        data.socket.off('close', onDataClose);
        data.socket.destroy();
        data = null;
      }
      viaMux = splice(sock, stream, () => close(false), undefined, o.reader ? { a: o.reader } : undefined);
      throw new Error('unsealed');
    }
    if (r.ok) return r;
    o.logger.debug({ server: session.serverId, internalPort: o.header.internalPort, code: errorCodeFromWire(r.code ?? 0) }, r.message || 'agent could not open the local port');
    throw new Error('refused');
  });
  Promise.all([answered, arrival]).then(
    ([, a]) => {
      if (closed) return;
      try {
        pair = o.engine.add(sock, a.socket, keys, a.preload);
        if (pooled) metrics.sealedConnections.inc({ result: 'reused' });
        o.reader?.dispose(); // the engine reads the client now
      } catch (err) {
        o.logger.warn({ err: (err as Error).message }, 'cannot hand a connection to the sealed engine');
        stream.destroy();
        return close(true);
      }
      stream.resume(); // only its end (or reset) comes now
      void pair.done.then((res) => {
        if (res.code) stream.destroy();
        else stream.end();
        close(res.code !== '', res.code === '');
      });
    },
    () => {
      if (unsealed) return; // spliced: splice ends it
      // The agent refused or went silent, or its data connection never came: look like a closed port.
      if (!stream.destroyed) stream.destroy();
      close(true);
    },
  );
  return counted;
}
