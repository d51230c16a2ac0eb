/** Target services that sit "inside the container" (on 127.0.0.2) and clients that check every byte. */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';

export interface Target {
  port: number;
  server: net.Server;
  /** Connections accepted so far. */
  accepted: number;
  close(): Promise<void>;
}

function listen(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

function wrap(server: net.Server, port: number): Target {
  const sockets = new Set<net.Socket>();
  const t: Target = {
    port,
    server,
    accepted: 0,
    close: () =>
      new Promise<void>((res) => {
        for (const s of sockets) s.destroy();
        server.close(() => res());
      }),
  };
  server.on('connection', (s) => {
    t.accepted++;
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => undefined);
  });
  return t;
}

/** Echoes every byte back; half-close aware (ends after the client ends). */
export async function startEcho(host: string, port = 0): Promise<Target> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
  return wrap(server, await listen(server, host, port));
}

/** Reads everything (hashing it) while sending `sendBytes` random bytes; reports both hashes per connection. */
export async function startSourceSink(
  host: string,
  port: number,
  sendBytes: number,
  onDone: (r: { received: number; receivedSha: string; sent: number; sentSha: string }) => void,
): Promise<Target> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    const inHash = createHash('sha256');
    let received = 0;
    let sentInfo: { sent: number; sentSha: string } | null = null;
    let readDone = false;
    const maybeDone = () => {
      if (readDone && sentInfo) onDone({ received, receivedSha: inHash.digest('hex'), ...sentInfo });
    };
    s.on('data', (c: Buffer) => {
      received += c.length;
      inHash.update(c);
    });
    s.on('end', () => {
      readDone = true;
      maybeDone();
    });
    void writeRandom(s, sendBytes).then((info) => {
      sentInfo = info;
      s.end();
      maybeDone();
    });
  });
  return wrap(server, await listen(server, host, port));
}

/** Writes n random bytes with backpressure; resolves with the count and sha256 of what was written. */
export async function writeRandom(s: net.Socket | NodeJS.WritableStream, n: number, chunk = 256 * 1024): Promise<{ sent: number; sentSha: string }> {
  const h = createHash('sha256');
  let sent = 0;
  while (sent < n) {
    const len = Math.min(chunk, n - sent);
    const buf = randomBytes(len);
    h.update(buf);
    sent += len;
    if (!s.write(buf)) {
      const ok = await new Promise<boolean>((res) => {
        const onDrain = () => {
          cleanup();
          res(true);
        };
        const onClose = () => {
          cleanup();
          res(false);
        };
        const cleanup = () => {
          s.removeListener('drain', onDrain);
          s.removeListener('close', onClose);
          s.removeListener('error', onClose);
        };
        s.once('drain', onDrain);
        s.once('close', onClose);
        s.once('error', onClose);
      });
      if (!ok) break;
    }
  }
  return { sent, sentSha: h.digest('hex') };
}

export interface ExchangeResult {
  sent: number;
  sentSha: string;
  received: number;
  receivedSha: string;
}

/** Connects, sends n random bytes then half-closes, reads everything back; resolves once the server ends. */
export function exchange(host: string, port: number, n: number): Promise<ExchangeResult> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, allowHalfOpen: true });
    const h = createHash('sha256');
    let received = 0;
    let sentInfo: { sent: number; sentSha: string } | null = null;
    let ended = false;
    const done = () => {
      if (ended && sentInfo) {
        s.destroy();
        resolve({ ...sentInfo, received, receivedSha: h.digest('hex') });
      }
    };
    s.on('data', (c: Buffer) => {
      received += c.length;
      h.update(c);
    });
    s.once('end', () => {
      ended = true;
      done();
    });
    s.once('error', reject);
    s.once('connect', () => {
      void writeRandom(s, n).then((info) => {
        sentInfo = info;
        s.end();
        done();
      });
    });
  });
}

/**
 * Half-close round trip: connects, sends `payload` together with FIN, then
 * reads until the server's FIN; resolves with what came back.
 */
export function halfCloseRequest(host: string, port: number, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ host, port, allowHalfOpen: true });
    let data = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => (data += d));
    c.on('end', () => {
      c.end();
      resolve(data);
    });
    c.on('error', reject);
    c.on('connect', () => c.end(payload));
  });
}

/** Connects and resolves true when the connection is refused or reset before any data arrives. */
export function refused(host: string, port: number, timeoutMs = 5_000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const timer = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, timeoutMs);
    s.once('data', () => {
      clearTimeout(timer);
      s.destroy();
      resolve(false);
    });
    s.once('error', () => {
      clearTimeout(timer);
      resolve(true);
    });
    s.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
    s.once('connect', () => s.write('ping\n'));
  });
}

export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

/**
 * One raw TCP connection to `port` on 127.0.0.1: an HTTP/1.0 GET of /raw,
 * resolved with the answer's body trimmed (the app's name in the replica
 * tests), or null on a reset, an empty answer or after 5 s.
 */
export function rawHttpBody(port: number, timeoutMs = 5_000): Promise<string | null> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let data = '';
    const timer = setTimeout(() => s.destroy(), timeoutMs);
    s.setEncoding('utf8');
    s.on('connect', () => s.write('GET /raw HTTP/1.0\r\nHost: x\r\n\r\n'));
    s.on('data', (d: string) => (data += d));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      const body = data.split('\r\n\r\n')[1];
      resolve(body ? body.trim() : null);
    });
  });
}
