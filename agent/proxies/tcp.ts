/** TCP streams: dial local_host:internal_port, answer with the open-result, then pipe bytes both ways. */
import net from 'node:net';
import { splice } from '../../shared/util/splice.js';
import { SocketReader, withReader } from '../../shared/util/socket-reader.js';
import { nothingListeningMessage, sendOpenError, sendOpenOk } from './open-result.js';
import type { AgentStreamHandler } from './types.js';
import { sealedTcp } from './tcp-sealed.js';

export const tcpHandler: AgentStreamHandler = (stream, header, mapping, ctx) => {
  const port = mapping.internalPort;
  if (header.sealedId && header.sealedId.length > 0) {
    if (ctx.sealed) sealedTcp(stream, header, port, ctx, ctx.sealed);
    else sendOpenError(stream, 'PROTOCOL_ERROR', 'the relay asked for a sealed data connection this agent did not offer');
    return;
  }
  // Read through our own (growing) buffers: a bulk download becomes 256 KiB mux bursts.
  const reader = new SocketReader();
  const sock = net.connect(withReader({ host: ctx.localHost, port, allowHalfOpen: true, noDelay: true }, reader));
  const timer = setTimeout(() => sock.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })), ctx.dialTimeout);
  const onStreamGone = () => sock.destroy();
  stream.once('close', onStreamGone);
  sock.once('connect', () => {
    clearTimeout(timer);
    sock.off('error', onError);
    stream.off('close', onStreamGone);
    sendOpenOk(stream, sock.localAddress ?? '', sock.localPort ?? 0);
    splice(stream, sock, undefined, undefined, { b: reader });
  });
  const onError = (err: NodeJS.ErrnoException) => {
    clearTimeout(timer);
    stream.off('close', onStreamGone);
    if (err.code === 'ECONNREFUSED') {
      sendOpenError(stream, 'NOTHING_LISTENING', nothingListeningMessage(port, ctx.serverId));
    } else {
      sendOpenError(stream, 'UPSTREAM_FAILED', `cannot reach ${ctx.localHost}:${port} inside ${ctx.serverId}: ${err.code ?? err.message}`);
    }
    ctx.logger.debug({ port, err: err.code ?? err.message }, 'local dial failed');
  };
  sock.once('error', onError);
};
