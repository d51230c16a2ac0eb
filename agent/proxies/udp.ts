/**
 * UDP streams: one connected UDP socket per client flow, sending to
 * local_host:internal_port, so the app's replies come back to this socket and
 * thus to the right client. Datagrams travel the stream length-prefixed
 * (shared/framing/datagram.ts); replies wait in a bounded drop-oldest queue
 * while the stream is backpressured. The relay owns the idle clock: it ends
 * the stream when the flow expires, and the socket closes with it.
 */
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { DatagramDecoder } from '../../shared/framing/datagram.js';
import { DatagramWriter, type QueueLimits } from '../../shared/udp/datagram-writer.js';
import { Protocol } from '../../proto/index.js';
import type { MuxStream } from '../../shared/mux/index.js';
import { sendOpenError, sendOpenOk } from './open-result.js';
import type { AgentStreamContext, AgentStreamHandler } from './types.js';

/** Replies queued per flow while its stream is backpressured (the relay's defaults). */
const QUEUE_LIMITS: QueueLimits = { datagrams: 256, bytes: 256 * 1024 };
/** Datagrams allowed to wait in libuv for a flow socket before we drop instead. */
const SEND_QUEUE_MAX = 1024;
const SOCKET_BUFFER_BYTES = 1024 * 1024;
const WARN_INTERVAL_MS = 5_000;

/** Counters of this agent's UDP flows (process-wide; for logs and tests). */
export const udpAgentStats = { flows: 0, opened: 0, datagramsIn: 0, datagramsOut: 0, drops: 0 };
let lastDropWarn = 0;

export const udpHandler: AgentStreamHandler = (stream, _header, mapping, ctx) => {
  if ((mapping.protocol ?? Protocol.TCP) !== Protocol.UDP) {
    sendOpenError(stream, 'PROTOCOL_ERROR', `mapping ${mapping.id} is not a udp mapping`);
    return;
  }
  void openFlow(stream, mapping.internalPort, ctx);
};

async function openFlow(stream: MuxStream, port: number, ctx: AgentStreamContext): Promise<void> {
  let address = ctx.localHost;
  let family = net.isIP(address);
  try {
    if (family === 0) ({ address, family } = await lookup(ctx.localHost));
  } catch (err) {
    sendOpenError(stream, 'UPSTREAM_FAILED', `cannot resolve local_host ${ctx.localHost} inside ${ctx.serverId}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return;
  }
  if (stream.destroyed) return;
  const sock = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
  const onStreamGone = () => sock.close();
  stream.once('close', onStreamGone);
  const onError = (err: NodeJS.ErrnoException) => {
    stream.off('close', onStreamGone);
    try {
      sock.close();
    } catch {
      // already closed
    }
    sendOpenError(stream, 'UPSTREAM_FAILED', `cannot send udp to ${ctx.localHost}:${port} inside ${ctx.serverId}: ${err.code ?? err.message}`);
    ctx.logger.debug({ port, err: err.code ?? err.message }, 'udp flow socket failed');
  };
  sock.once('error', onError);
  sock.connect(port, address, () => {
    sock.off('error', onError);
    stream.off('close', onStreamGone);
    if (stream.destroyed) {
      sock.close();
      return;
    }
    const local = sock.address();
    sendOpenOk(stream, local.address, local.port);
    serve(stream, sock, port, ctx);
  });
}

function serve(stream: MuxStream, sock: dgram.Socket, port: number, ctx: AgentStreamContext): void {
  udpAgentStats.flows++;
  udpAgentStats.opened++;
  let refused = 0;
  let closed = false;
  try {
    sock.setRecvBufferSize(SOCKET_BUFFER_BYTES);
    sock.setSendBufferSize(SOCKET_BUFFER_BYTES);
  } catch {
    // Kernel limits: keep the defaults.
  }
  const writer = new DatagramWriter(QUEUE_LIMITS, (n) => drop(n, ctx));
  writer.attach(stream);
  const decoder = new DatagramDecoder((d) => {
    if (closed) return;
    if (sock.getSendQueueCount() >= SEND_QUEUE_MAX) {
      drop(1, ctx);
      return;
    }
    udpAgentStats.datagramsOut++;
    sock.send(d);
  });
  sock.on('message', (msg) => {
    udpAgentStats.datagramsIn++;
    writer.push(msg);
  });
  sock.on('error', (err: NodeJS.ErrnoException) => {
    // ICMP port unreachable on a connected socket: nothing listens (yet). UDP apps come and go; keep the flow.
    if (err.code === 'ECONNREFUSED') {
      if (refused++ === 0) ctx.logger.debug({ port }, `nothing is listening on udp port ${port} inside ${ctx.serverId}`);
      return;
    }
    ctx.logger.debug({ port, err: err.code ?? err.message }, 'udp flow socket error');
  });
  const close = () => {
    if (closed) return;
    closed = true;
    udpAgentStats.flows--;
    writer.close();
    try {
      sock.close();
    } catch {
      // already closed
    }
    if (!stream.destroyed && !stream.writableEnded) stream.end();
  };
  stream.on('data', (chunk: Buffer) => decoder.push(chunk));
  stream.once('end', close);
  stream.once('close', close);
  stream.resume();
}

function drop(n: number, ctx: AgentStreamContext): void {
  udpAgentStats.drops += n;
  const now = Date.now();
  if (now - lastDropWarn < WARN_INTERVAL_MS) return;
  lastDropWarn = now;
  ctx.logger.warn({ drops: udpAgentStats.drops }, `udp overload: the tunnel cannot carry replies as fast as local apps send them; dropped the oldest queued datagrams (${udpAgentStats.drops} dropped so far)`);
}
