/**
 * UDP streams: one connected UDP socket per client flow, sending to
 * local_host:internal_port, so the app's replies come back to this socket and
 * thus to the right client. Datagrams travel the stream length-prefixed
 * (shared/framing/datagram.ts); replies wait in a bounded drop-oldest queue
 * while the stream is backpressured. The relay owns the idle clock: it ends
 * the stream when the flow expires, and the socket closes with it.
 *
 * A busy flow the relay asks to seal (a seal record on its stream) moves
 * onto a sealed data connection: the same socket — the app keeps seeing
 * the same peer — is handed to the native engine, which reads and sends
 * its datagrams from then on (docs/native-data-path.md). Datagrams still
 * arriving on the stream are sent as before; should the data connection
 * fail, JavaScript reads the socket again and the stream carries the flow.
 */
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { isPorticoError } from '../../shared/errors.js';
import { DatagramDecoder } from '../../shared/framing/datagram.js';
import { DatagramWriter, type QueueLimits } from '../../shared/udp/datagram-writer.js';
import { Protocol } from '../../proto/index.js';
import { pairKeys } from '../../shared/sealed/keys.js';
import type { SealedUdpPair } from '../../shared/sealed/engine.js';
import { dialDataConnection, type PendingDataConnection } from './data-connection.js';
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
export const udpAgentStats = { flows: 0, opened: 0, datagramsIn: 0, datagramsOut: 0, drops: 0, sealed: 0 };
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
  let pair: SealedUdpPair | null = null;
  let sealing: PendingDataConnection | null = null;
  /** The relay's seal record: the flow moves onto a data connection (one at a time; a failed one is not retried). */
  const seal = (id: Buffer) => {
    const sealed = ctx.sealed;
    if (closed || !sealed || sealing || pair) return;
    let secrets;
    try {
      secrets = sealed.secrets(id); // (throws once the tunnel's TLS socket is gone, or for a reused id)
    } catch (err) {
      // The flow stays on its stream.
      if (isPorticoError(err)) ctx.logger.warn({ port, code: err.code }, err.message);
      return;
    }
    const keys = pairKeys(secrets, 'agent');
    const pending = (sealing = dialDataConnection(sealed, id, secrets));
    void pending.result.then((r) => {
      if (!r.ok) {
        ctx.logger.debug({ port, why: r.why }, 'udp flow not sealed; the stream carries it');
        return;
      }
      const fd = closed ? -1 : stopReceiving(sock);
      if (fd < 0) {
        r.sock.destroy();
        return;
      }
      let p: SealedUdpPair;
      try {
        p = pair = sealed.engine.addUdp(fd, r.sock, keys, r.preload);
      } catch (err) {
        ctx.logger.warn({ err: (err as Error).message }, 'cannot hand a udp flow to the sealed engine');
        r.sock.destroy();
        resumeReceiving(sock);
        return;
      }
      udpAgentStats.sealed++;
      const dataSock = r.sock;
      const onDataClose = () => p.abort();
      dataSock.once('close', onDataClose);
      void p.done.then((res) => {
        dataSock.off('close', onDataClose);
        dataSock.destroy();
        pair = null;
        udpAgentStats.datagramsIn += p.datagramsUp;
        udpAgentStats.datagramsOut += p.datagramsDown;
        udpAgentStats.drops += p.drops;
        if (closed) return;
        // The data connection failed: JavaScript reads the socket again and the stream carries the flow.
        ctx.logger.debug({ port, code: res.code }, 'sealed udp flow ended; the stream carries it again');
        resumeReceiving(sock);
      });
    });
  };
  const decoder = new DatagramDecoder(
    (d) => {
      if (closed) return;
      if (sock.getSendQueueCount() >= SEND_QUEUE_MAX) {
        drop(1, ctx);
        return;
      }
      udpAgentStats.datagramsOut++;
      sock.send(d);
    },
    ctx.sealed ? seal : null,
  );
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
    sealing?.cancel();
    pair?.abort();
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

type DgramHandle = { fd?: number; recvStart?: () => number; recvStop?: () => number };

/** node:dgram's handle (its state is kept under a symbol; the `_handle` getter is deprecated). */
function handleOf(sock: dgram.Socket): DgramHandle | undefined {
  const key = Object.getOwnPropertySymbols(sock).find((k) => k.description === 'state symbol');
  return key ? (sock as unknown as Record<symbol, { handle?: DgramHandle }>)[key]?.handle : undefined;
}

/** Stops libuv reading a UDP socket (the engine reads it now) and returns its descriptor, or -1. */
function stopReceiving(sock: dgram.Socket): number {
  const h = handleOf(sock);
  if (!h || typeof h.fd !== 'number' || h.fd < 0 || !h.recvStop) return -1;
  h.recvStop();
  return h.fd;
}

/** JavaScript reads the socket again (its 'message' handler still attached). */
function resumeReceiving(sock: dgram.Socket): void {
  handleOf(sock)?.recvStart?.();
}
