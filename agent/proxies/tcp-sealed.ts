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

/** How long the agent waits for the relay to close a finished data connection before closing it itself. */
const CLOSE_WAIT_MS = 5_000;

export function sealedTcp(stream: MuxStream, header: StreamHeader, port: number, ctx: AgentStreamContext, sealed: SealedDataPath): void {
  const id = Buffer.from(header.sealedId!);
  const secrets = sealed.secrets(id);
  const app = net.connect({ host: ctx.localHost, port, allowHalfOpen: true, noDelay: true });
  app.pause(); // never read by Node: the engine takes it over
  const data = sealed.dial();
  let pending = 2;
  let failed = false;
  let pair: SealedPair | null = null;
  const timer = setTimeout(() => fail('TIMEOUT'), ctx.dialTimeout);
  const cleanup = () => {
    clearTimeout(timer);
    app.destroy();
    data.destroy();
  };
  function fail(why: 'APP' | 'DATA' | 'TIMEOUT' | 'STREAM', err?: NodeJS.ErrnoException): void {
    if (failed || pair) return;
    failed = true;
    cleanup();
    if (why === 'APP' && err?.code === 'ECONNREFUSED') sendOpenError(stream, 'NOTHING_LISTENING', nothingListeningMessage(port, ctx.serverId));
    else if (why === 'APP') sendOpenError(stream, 'UPSTREAM_FAILED', `cannot reach ${ctx.localHost}:${port} inside ${ctx.serverId}: ${err?.code ?? err?.message}`);
    else if (why === 'DATA') sendOpenError(stream, 'UPSTREAM_FAILED', `cannot open a sealed data connection to the relay: ${err?.code ?? err?.message}`);
    else if (why === 'TIMEOUT') sendOpenError(stream, 'TIMEOUT', `connecting ${ctx.localHost}:${port} and the data connection took over ${ctx.dialTimeout} ms`);
    ctx.logger.debug({ port, why, err: err?.code ?? err?.message }, 'sealed stream not opened');
  }
  const ready = () => {
    if (--pending > 0 || failed) return;
    clearTimeout(timer);
    try {
      pair = sealed.engine.add(app, data, pairKeys(secrets, 'agent'));
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
    data.once('close', () => p.abort());
    void p.done.then((res) => {
      app.destroy();
      if (res.code) {
        data.destroy();
        stream.destroy();
        return;
      }
      stream.end();
      // The relay closes the data connection first, so TIME_WAIT lands on the relay's side and not on
      // the agent's ephemeral ports (one data connection per raw TCP connection would run them out).
      const bye = setTimeout(() => data.destroy(), CLOSE_WAIT_MS);
      data.once('end', () => data.destroy());
      data.once('close', () => clearTimeout(bye));
      data.resume();
    });
  };
  app.once('connect', ready);
  app.once('error', (err) => fail('APP', err));
  data.once('error', (err) => fail('DATA', err));
  data.once('connect', () => data.write(preamble(id, secrets), (err) => (err ? fail('DATA', err) : ready())));
  stream.once('close', () => {
    if (pair) {
      if (!stream.readableEnded || stream.errored) pair.abort();
    } else fail('STREAM');
  });
  app.on('error', () => undefined);
  data.on('error', () => undefined);
}
