/**
 * A new sealed data connection (docs/native-data-path.md): dialed beside
 * the tunnel, it sends the 36-byte preamble (id and proof) and waits for
 * the relay's one-byte answer. Used by sealed TCP streams and by UDP flows
 * the relay asked to seal.
 */
import type net from 'node:net';
import { preamble, SEALED_ACK, type StreamSecrets } from '../../shared/sealed/keys.js';
import { stopReading } from '../../shared/sealed/engine.js';
import type { SealedDataPath } from './types.js';

/** How long a new data connection may take to be answered before the stream rides the mux instead. */
export const DATA_ANSWER_MS = 5_000;

/**
 * `preload`: bytes that came right behind the relay's answer (a sealed UDP
 * flow's relay side starts sending at once), for the engine to read first.
 */
export type DataDial = { ok: true; sock: net.Socket; preload: Buffer } | { ok: false; why: string };

export interface PendingDataConnection {
  /** The answered connection (its reading stopped, ready for the engine), or why there is none. */
  readonly result: Promise<DataDial>;
  /** Gives up: a connection still being set up is closed (result: not ok). */
  cancel(): void;
}

export function dialDataConnection(sealed: SealedDataPath, id: Buffer, secrets: StreamSecrets): PendingDataConnection {
  let sock: net.Socket | null = null;
  let cancelled = false;
  let settle!: (r: DataDial) => void;
  const result = new Promise<DataDial>((res) => (settle = res));
  void sealed.dial().then((dialed) => {
    if (!dialed) return settle({ ok: false, why: 'a burst: no free slot to set up a data connection in time' });
    if (cancelled) {
      dialed.sock.destroy();
      dialed.done();
      return settle({ ok: false, why: 'cancelled' });
    }
    const s = (sock = dialed.sock);
    s.on('error', () => undefined);
    let answered = false;
    const finish = (r: DataDial) => {
      if (answered) return;
      answered = true;
      clearTimeout(answerTimer);
      dialed.done();
      s.off('close', gone);
      if (!r.ok) s.destroy();
      settle(r);
    };
    const answerTimer = setTimeout(() => finish({ ok: false, why: 'the relay did not answer the data connection' }), DATA_ANSWER_MS);
    const gone = () => finish({ ok: false, why: cancelled ? 'cancelled' : 'the relay closed the data connection (refused)' });
    s.once('close', gone);
    s.once('connect', () => s.write(preamble(id, secrets)));
    // The relay answers a matched preamble with one byte; a TCP stream's relay side then sends nothing
    // until this side's open-result, a UDP flow's may send units at once.
    s.once('data', (answer: Buffer) => {
      stopReading(s);
      if (answer.length >= 1 && answer[0] === SEALED_ACK) finish({ ok: true, sock: s, preload: answer.subarray(1) });
      else finish({ ok: false, why: 'unexpected answer on the data connection' });
    });
    s.resume();
  });
  return {
    result,
    cancel() {
      cancelled = true;
      sock?.destroy();
    },
  };
}
