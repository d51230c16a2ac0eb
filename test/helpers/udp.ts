/** UDP targets (inside the "container", on 127.0.0.2) and clients for the UDP tests and bench. */
import dgram from 'node:dgram';
import net from 'node:net';

export interface UdpTarget {
  port: number;
  socket: dgram.Socket;
  /** Datagrams received, and from how many distinct source addr:port (flows as the app sees them). */
  received: number;
  sources: Set<string>;
  close(): Promise<void>;
}

export function bindUdp(host: string, port = 0, bufferBytes = 4 * 1024 * 1024): Promise<dgram.Socket> {
  const s = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4' });
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.bind({ port, address: host, exclusive: true }, () => {
      s.off('error', reject);
      s.on('error', () => undefined);
      try {
        s.setRecvBufferSize(bufferBytes);
        s.setSendBufferSize(bufferBytes);
      } catch {
        // kernel limit
      }
      resolve(s);
    });
  });
}

export function closeUdp(s: dgram.Socket): Promise<void> {
  return new Promise((res) => {
    try {
      s.close(() => res());
    } catch {
      res();
    }
  });
}

/** A UDP server; `reply` decides what goes back (default: echo). */
export async function startUdpTarget(host: string, port: number, reply: ((msg: Buffer) => Buffer | null) | null = (m) => m): Promise<UdpTarget> {
  const socket = await bindUdp(host, port);
  const t: UdpTarget = { port: (socket.address() as net.AddressInfo).port, socket, received: 0, sources: new Set(), close: () => closeUdp(socket) };
  socket.on('message', (msg, rinfo) => {
    t.received++;
    t.sources.add(`${rinfo.address}:${rinfo.port}`);
    const out = reply?.(msg);
    if (out) socket.send(out, rinfo.port, rinfo.address);
  });
  return t;
}

/** Can a UDP socket bind host:port right now? (false = something holds it). */
export async function udpPortFree(host: string, port: number): Promise<boolean> {
  try {
    await closeUdp(await bindUdp(host, port));
    return true;
  } catch {
    return false;
  }
}

/** Sends `msg` until a reply arrives (UDP may drop the first tries while a flow opens); resolves with the reply. */
export async function request(sock: dgram.Socket, port: number, host: string, msg: Buffer, timeoutMs = 5_000, everyMs = 200): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: Buffer) => {
      cleanup();
      resolve(m);
    };
    const send = () => sock.send(msg, port, host);
    const iv = setInterval(send, everyMs);
    const to = setTimeout(() => {
      cleanup();
      reject(new Error(`no udp reply from ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    const cleanup = () => {
      clearInterval(iv);
      clearTimeout(to);
      sock.off('message', onMsg);
    };
    sock.on('message', onMsg);
    send();
  });
}

/** True when no reply arrives within `ms` for `msg` (sent a few times). */
export async function noReply(sock: dgram.Socket, port: number, host: string, msg: Buffer, ms = 1_000): Promise<boolean> {
  try {
    await request(sock, port, host, msg, ms, Math.max(50, Math.floor(ms / 4)));
    return false;
  } catch {
    return true;
  }
}
