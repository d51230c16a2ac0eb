/**
 * A busy UDP flow moved onto a sealed data connection
 * (docs/native-data-path.md). The relay writes a seal record on the flow's
 * stream; the agent dials a data connection with the record's id and
 * hands its socket to the app (the same one, so the app sees the same
 * peer) to its engine. When that connection arrives here, the relay makes
 * a UDP socket of the flow's own on the public port — SO_REUSEPORT, bound
 * like the public socket and connected to the client, so the kernel hands
 * it that client's datagrams — and gives it and the data connection to the
 * engine. From then on no JavaScript touches the flow's datagrams; the
 * stream stays its anchor, and still carries the few datagrams that were
 * on their way through the JavaScript path. If anything fails, the flow
 * stays (or returns) on the stream.
 */
import { encodeSealRecord } from '../../shared/framing/datagram.js';
import type { Logger } from '../../shared/logging.js';
import type { SealedEngine, SealedUdpPair } from '../../shared/sealed/engine.js';
import { newSealedId, pairKeys } from '../../shared/sealed/keys.js';
import type { MuxStream } from '../../shared/mux/index.js';
import type { AgentSession } from '../sessions/agent-session.js';
import type { SealedRendezvous } from '../sealed/rendezvous.js';

export interface SealFlowOptions {
  engine: SealedEngine;
  rendezvous: SealedRendezvous;
  session: AgentSession;
  stream: MuxStream;
  /** The public socket's family and bound address, and its port. */
  v6: boolean;
  bindHost: string;
  port: number;
  /** The client, as node:dgram reported it. */
  clientHost: string;
  clientPort: number;
  bufferBytes: number;
  timeoutMs: number;
  logger: Logger;
  /** The pair runs: its datagrams bypass JavaScript from now on. */
  onSealed(pair: SealedUdpPair): void;
  /** Datagrams the flow's socket got before it was connected (any client's): route them as the public socket's. */
  onStray(data: Buffer, address: string, port: number): void;
  /**
   * The try is over: the pair ended (aborted or failed; `ran`), or it never
   * started (no data connection, no socket, cancelled). The flow's
   * datagrams reach JavaScript again.
   */
  onEnded(code: string, ran: boolean): void;
}

export interface SealingFlow {
  /** Stops waiting for the data connection, or aborts the pair. */
  cancel(): void;
}

export function sealFlow(o: SealFlowOptions): SealingFlow | null {
  const id = newSealedId();
  let secrets;
  try {
    secrets = o.session.sealed!(id); // (throws once the tunnel's TLS socket is gone)
  } catch {
    return null;
  }
  const keys = pairKeys(secrets, 'relay');
  const wait = o.rendezvous.expect(id, secrets.proof, o.timeoutMs, o.session.peer.remoteAddress);
  let pair: SealedUdpPair | null = null;
  let cancelled = false;
  o.stream.write(encodeSealRecord(id));
  const gaveUp = (code: string) => o.onEnded(code, false);
  wait.arrival.then(
    (a) => {
      if (cancelled || o.stream.destroyed) {
        a.socket.destroy();
        return gaveUp('CANCELLED');
      }
      let fd: number;
      try {
        fd = o.engine.udpSocket({ v6: o.v6, bindHost: o.bindHost, bindPort: o.port, connect: { host: o.clientHost, port: o.clientPort }, bufferBytes: o.bufferBytes });
      } catch (err) {
        o.logger.warn({ port: o.port, err: (err as NodeJS.ErrnoException).code ?? (err as Error).message }, `cannot give a udp flow a socket of its own on public port ${o.port}; the tunnel stream carries it`);
        a.socket.destroy();
        return gaveUp('NO_SOCKET');
      }
      for (const d of o.engine.udpDrain(fd)) o.onStray(d.data, d.address, d.port);
      let p: SealedUdpPair;
      try {
        p = pair = o.engine.addUdp(fd, a.socket, keys, a.preload);
      } catch (err) {
        o.logger.warn({ err: (err as Error).message }, 'cannot hand a udp flow to the sealed engine');
        a.socket.destroy();
        return gaveUp('ENGINE_FAILED');
      } finally {
        o.engine.closeFd(fd); // the engine works on its own copy
      }
      const dataSock = a.socket;
      const onDataClose = () => p.abort();
      dataSock.once('close', onDataClose);
      o.onSealed(p);
      void p.done.then((res) => {
        dataSock.off('close', onDataClose);
        dataSock.destroy();
        o.onEnded(res.code, true);
      });
    },
    () => gaveUp('NO_DATA_CONNECTION'), // (or cancelled): the stream carries the flow
  );
  return {
    cancel() {
      cancelled = true;
      wait.cancel();
      pair?.abort();
    },
  };
}
