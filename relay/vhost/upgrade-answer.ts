/**
 * The app's answer to an upgrade request (WebSocket and the like), read with
 * the proxy's response parser in upgrade mode. Only a `101 Switching
 * Protocols` turns the client's connection into a tunnel: anything else means
 * the app refused, and its response is relayed as the connection's final
 * answer (`Connection: close`, body until close) — never a raw tunnel in which
 * later requests would reach the app unchecked, without the relay's headers,
 * sign-in and rate limits.
 */
import type { Duplex } from 'node:stream';
import { ResponseParser, type ResponseHead } from './response-parser.js';
import { forwardResponseHeaders } from './headers.js';

export type UpgradeAnswer =
  /** 101: its head and the bytes after it go to the client, then the tunnel. */
  | { upgraded: Buffer }
  /** Any other status: relayed to the client, both ends closed. */
  | { refused: number }
  | { error: Error };

/** Reads the app's answer from `stream` (after the request head was written); `done` is called once. */
export function awaitUpgradeAnswer(stream: Duplex, socket: Duplex, maxHeadBytes: number, done: (a: UpgradeAnswer) => void): void {
  let head: ResponseHead | null = null;
  let settled = false;
  const settle = (a: UpgradeAnswer) => {
    if (settled) return;
    settled = true;
    stream.off('data', onData);
    stream.off('end', onEnd);
    if (!('upgraded' in a)) stream.destroy();
    if ('refused' in a) socket.end();
    done(a);
  };
  const parser = new ResponseParser(
    {
      onHead(h: ResponseHead) {
        head = h;
        if (h.statusCode === 101) return;
        // A refusal: framing is the relay's, the (decoded) body runs until the connection closes.
        socket.write(serializeHead(h, forwardResponseHeaders(h.rawHeaders).filter(notContentLength), 'Connection: close\r\n'), 'latin1');
      },
      onBody(chunk: Buffer) {
        if (!socket.write(chunk)) {
          stream.pause();
          socket.once('drain', () => stream.resume());
        }
      },
      onComplete() {
        if (head?.statusCode !== 101) settle({ refused: head?.statusCode ?? 0 });
      },
    },
    maxHeadBytes,
  );
  parser.reset(false, true);
  const onData = (chunk: Buffer) => {
    let used: number;
    try {
      used = parser.execute(chunk);
    } catch (err) {
      return settle({ error: err as Error });
    }
    if (head?.statusCode === 101) {
      // The 101 head as the app sent it (its Connection/Upgrade included), then the new protocol's first bytes.
      stream.pause();
      settle({ upgraded: Buffer.concat([Buffer.from(serializeHead(head, head.rawHeaders, ''), 'latin1'), chunk.subarray(used)]) });
    }
  };
  const onEnd = () => {
    try {
      parser.finish();
    } catch (err) {
      return settle({ error: err as Error });
    }
    // A close-delimited refusal body ended here; no head at all is an app that never answered.
    if (head === null) settle({ error: new Error('the app closed the connection without answering the upgrade') });
  };
  stream.on('data', onData);
  stream.once('end', onEnd);
  // Reading the open-result (readFrame) paused the stream explicitly; a 'data' listener alone does not resume it.
  stream.resume();
}

/** Header pairs without Content-Length (the relay frames a refusal by closing). */
function notContentLength(_: string, i: number, a: string[]): boolean {
  const name = i % 2 === 0 ? a[i]! : a[i - 1]!;
  return name.toLowerCase() !== 'content-length';
}

function serializeHead(h: ResponseHead, headers: string[], extra: string): string {
  let s = `HTTP/1.1 ${h.statusCode} ${h.statusMessage}\r\n`;
  for (let i = 0; i < headers.length; i += 2) s += `${headers[i]!}: ${headers[i + 1]!}\r\n`;
  return `${s}${extra}\r\n`;
}
