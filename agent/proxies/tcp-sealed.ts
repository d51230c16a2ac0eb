/**
 * Agent side of a sealed TCP stream (docs/native-data-path.md): dial the
 * app and, beside the tunnel, a data connection to the relay that starts
 * with the preamble; once both are up, hand them to the native engine and
 * answer the stream. The stream then only anchors the connection: its
 * reset aborts the pair, and it is ended when the pair ended.
 */
import net from 'node:net';
import { pairKeys, preamble } from '../../shared/sealed/keys.js';
import type { SealedPair } from '../../shared/sealed/engine.js';
import type { MuxStream } from '../../shared/mux/index.js';
import type { StreamHeader } from '../../proto/index.js';
import { nothingListeningMessage, sendOpenError, sendOpenOk } from './open-result.js';
import type { AgentStreamContext, SealedDataPath } from './types.js';

/** How long a reused data connection may still be finishing its previous stream on this side. */
const REUSE_WAIT_MS = 2_000;

export function sealedTcp(stream: MuxStream, header: StreamHeader, port: number, ctx: AgentStreamContext, sealed: SealedDataPath): void {
  const id = Buffer.from(header.sealedId!);
  const poolId = header.poolId && header.poolId.length > 0 ? Buffer.from(header.poolId).toString('hex') : null;
  // The data connection's name in the idle pools of both sides: the id of the stream that opened it.
  const connId = poolId ?? id.toString('hex');
  const secrets = sealed.secrets(id);
  const app = net.connect({ host: ctx.localHost, port, allowHalfOpen: true, noDelay: true });
  app.pause(); // never read by Node: the engine takes it over
  let data: net.Socket | null = null;
  let pending = 2;
  let failed = false;
  let pair: SealedPair | null = null;
  const onDataClose = () => pair?.abort();
  const timer = setTimeout(() => fail('TIMEOUT'), ctx.dialTimeout);
  const cleanup = () => {
    clearTimeout(timer);
    app.destroy();
    data?.destroy();
  };
  function fail(why: 'APP' | 'DATA' | 'TIMEOUT' | 'STREAM' | 'REUSE', err?: NodeJS.ErrnoException): void {
    if (failed || pair) return;
    failed = true;
    cleanup();
    if (why === 'APP' && err?.code === 'ECONNREFUSED') sendOpenError(stream, 'NOTHING_LISTENING', nothingListeningMessage(port, ctx.serverId));
    else if (why === 'APP') sendOpenError(stream, 'UPSTREAM_FAILED', `cannot reach ${ctx.localHost}:${port} inside ${ctx.serverId}: ${err?.code ?? err?.message}`);
    else if (why === 'DATA') sendOpenError(stream, 'UPSTREAM_FAILED', `cannot open a sealed data connection to the relay: ${err?.code ?? err?.message}`);
    else if (why === 'REUSE') sendOpenError(stream, 'UPSTREAM_FAILED', 'the idle data connection the relay chose is gone on the agent side');
    else if (why === 'TIMEOUT') sendOpenError(stream, 'TIMEOUT', `connecting ${ctx.localHost}:${port} and the data connection took over ${ctx.dialTimeout} ms`);
    ctx.logger.debug({ port, why, err: err?.code ?? err?.message }, 'sealed stream not opened');
  }
  const ready = () => {
    if (--pending > 0 || failed || !data) return;
    clearTimeout(timer);
    const d = data;
    try {
      pair = sealed.engine.add(app, d, pairKeys(secrets, 'agent'));
    } catch (err) {
      ctx.logger.warn({ err: (err as Error).message }, 'cannot hand a connection to the sealed engine');
      failed = true;
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
        return;
      }
      stream.end();
      // Both FIN units crossed: nothing is in flight, the connection can carry the relay's next stream.
      // (The relay closes idle ones first, so TIME_WAIT lands on its side, not on the agent's ports.)
      sealed.pool.put(connId, d);
    });
  };
  app.once('connect', ready);
  app.once('error', (err) => fail('APP', err));
  app.on('error', () => undefined);
  if (poolId) {
    void sealed.pool.waitFor(poolId, REUSE_WAIT_MS).then((s) => {
      if (!s) return fail('REUSE');
      data = s;
      if (failed) return s.destroy();
      ready();
    });
  } else {
    const s = sealed.dial();
    data = s;
    s.on('error', () => undefined);
    s.once('error', (err) => fail('DATA', err));
    s.once('connect', () => s.write(preamble(id, secrets), (err) => (err ? fail('DATA', err) : ready())));
  }
  stream.once('close', () => {
    if (pair) {
      if (!stream.readableEnded || stream.errored) pair.abort();
    } else fail('STREAM');
  });
}
