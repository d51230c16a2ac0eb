/**
 * Agent side of a sealed TCP stream (docs/native-data-path.md): dial the
 * app and, beside the tunnel, a data connection to the relay that starts
 * with the preamble (or take the idle one the relay named); once the relay
 * answered it and the app is up, hand both to the native engine and answer
 * the stream. The stream then only anchors the connection: its reset
 * aborts the pair, and it is ended when the pair ended. Without a data
 * connection (refused, unreachable, gone) the stream carries the bytes
 * itself, like any mux stream — the open-result says `unsealed`.
 */
import net from 'node:net';
import { isPorticoError } from '../../shared/errors.js';
import { pairKeys } from '../../shared/sealed/keys.js';
import type { SealedPair } from '../../shared/sealed/engine.js';
import { splice } from '../../shared/util/splice.js';
import type { MuxStream } from '../../shared/mux/index.js';
import type { StreamHeader } from '../../proto/index.js';
import { nothingListeningMessage, sendOpenError, sendOpenOk } from './open-result.js';
import type { AgentStreamContext, SealedDataPath } from './types.js';
import { dialDataConnection, type PendingDataConnection } from './data-connection.js';

/** How long a reused data connection may still be finishing its previous stream on this side. */
const REUSE_WAIT_MS = 2_000;

export function sealedTcp(stream: MuxStream, header: StreamHeader, port: number, ctx: AgentStreamContext, sealed: SealedDataPath): void {
  const id = Buffer.from(header.sealedId!);
  const poolId = header.poolId && header.poolId.length > 0 ? Buffer.from(header.poolId).toString('hex') : null;
  // The data connection's name in the idle pools of both sides: the id of the stream that opened it.
  const connId = poolId ?? id.toString('hex');
  let secrets;
  try {
    secrets = sealed.secrets(id); // (throws once the tunnel's TLS socket is gone, or for a reused id)
  } catch (err) {
    if (isPorticoError(err)) {
      ctx.logger.warn({ port, code: err.code }, err.message);
      sendOpenError(stream, err.code, err.message);
    } else stream.destroy();
    return;
  }
  const keys = pairKeys(secrets, 'agent');
  const app = net.connect({ host: ctx.localHost, port, allowHalfOpen: true, noDelay: true });
  app.pause(); // never read by Node: the engine takes it over
  let data: net.Socket | null = null;
  let pending: PendingDataConnection | null = null;
  let dataState: 'pending' | 'ok' | 'failed' = 'pending';
  let appUp = false;
  let decided = false;
  let failed = false;
  let pair: SealedPair | null = null;
  const onDataClose = () => pair?.abort();
  const timer = setTimeout(() => fail('TIMEOUT'), ctx.dialTimeout);
  const cleanup = () => {
    clearTimeout(timer);
    app.destroy();
    data?.destroy();
    pending?.cancel();
  };
  function fail(why: 'APP' | 'TIMEOUT' | 'STREAM', err?: NodeJS.ErrnoException): void {
    if (failed || decided) return;
    failed = true;
    cleanup();
    if (why === 'APP' && err?.code === 'ECONNREFUSED') sendOpenError(stream, 'NOTHING_LISTENING', nothingListeningMessage(port, ctx.serverId));
    else if (why === 'APP') sendOpenError(stream, 'UPSTREAM_FAILED', `cannot reach ${ctx.localHost}:${port} inside ${ctx.serverId}: ${err?.code ?? err?.message}`);
    else if (why === 'TIMEOUT') sendOpenError(stream, 'TIMEOUT', `connecting ${ctx.localHost}:${port} took over ${ctx.dialTimeout} ms`);
    ctx.logger.debug({ port, why, err: err?.code ?? err?.message }, 'sealed stream not opened');
  }
  /** No data connection (refused, unreachable, gone from the pool): the stream carries the bytes. */
  const dataFailed = (why: string) => {
    if (dataState !== 'pending') return;
    dataState = 'failed';
    data?.destroy();
    data = null;
    ctx.logger.debug({ port, why }, 'no sealed data connection; the stream carries the bytes');
    decide();
  };
  const dataOk = (s: net.Socket) => {
    if (dataState !== 'pending' || failed) {
      s.destroy();
      return;
    }
    dataState = 'ok';
    data = s;
    decide();
  };
  function decide(): void {
    if (decided || failed || !appUp || dataState === 'pending') return;
    decided = true;
    clearTimeout(timer);
    if (dataState === 'failed' || !data) {
      sendOpenOk(stream, app.localAddress ?? '', app.localPort ?? 0, true);
      splice(stream, app);
      return;
    }
    const d = data;
    try {
      pair = sealed.engine.add(app, d, keys);
    } catch (err) {
      ctx.logger.warn({ err: (err as Error).message }, 'cannot hand a connection to the sealed engine');
      cleanup();
      stream.destroy();
      return;
    }
    const p = pair;
    sendOpenOk(stream, app.localAddress ?? '', app.localPort ?? 0);
    stream.resume(); // only its end (or reset) comes now
    // JavaScript destroying a socket (the agent stopping) takes the pair with it.
    app.once('close', () => p.abort());
    d.once('close', onDataClose);
    void p.done.then((res) => {
      app.destroy();
      d.off('close', onDataClose);
      if (res.code) {
        d.destroy();
        stream.destroy();
        sealed.pool.discard(connId); // a next stream the relay already named on it stops waiting
        return;
      }
      stream.end();
      // Both FIN units crossed: nothing is in flight, the connection can carry the relay's next stream.
      // (The relay closes idle ones first, so TIME_WAIT lands on its side, not on the agent's ports.)
      sealed.pool.put(connId, d);
    });
  }
  app.once('connect', () => {
    appUp = true;
    decide();
  });
  app.once('error', (err) => fail('APP', err));
  app.on('error', () => undefined);
  if (poolId) {
    void sealed.pool.waitFor(poolId, REUSE_WAIT_MS).then((s) => (s ? dataOk(s) : dataFailed('the idle data connection the relay chose is gone here')));
  } else {
    pending = dialDataConnection(sealed, id, secrets);
    // (A TCP stream's relay side sends nothing before this side's open-result: bytes behind the answer are wrong.)
    void pending.result.then((r) => (!r.ok ? dataFailed(r.why) : r.preload.length === 0 ? dataOk(r.sock) : (r.sock.destroy(), dataFailed('unexpected answer on the data connection'))));
  }
  stream.once('close', () => {
    if (pair) {
      if (!stream.readableEnded || stream.errored) pair.abort();
    } else if (!decided) fail('STREAM');
  });
}
