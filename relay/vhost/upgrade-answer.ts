/**
 * The app's answer to an upgrade request (WebSocket and the like). Only a
 * `101 Switching Protocols` turns the client's connection into a tunnel:
 * anything else means the app refused, and its response is relayed as the
 * connection's final answer (`Connection: close`, body until close) — never a
 * raw tunnel in which later requests would reach the app unchecked, without
 * the relay's headers, sign-in and rate limits.
 */
import type { Duplex } from 'node:stream';
import { ResponseParser, type ResponseHead } from './response-parser.js';
import { forwardResponseHeaders } from './headers.js';

export type UpgradeAnswer =
  /** 101: the bytes read so far (the 101 head and whatever followed) go to the client, then the tunnel. */
  | { upgraded: Buffer }
  /** Any other status: relayed to the client, both ends closed. */
  | { refused: number }
  | { error: Error };

const HEAD_END = Buffer.from('\r\n\r\n');
const BARE_HEAD_END = Buffer.from('\n\n');

/** Reads the app's answer from `stream` (after the request head was written); `done` is called once. */
export function awaitUpgradeAnswer(stream: Duplex, socket: Duplex, maxHeadBytes: number, done: (a: UpgradeAnswer) => void): void {
  let buf: Buffer = Buffer.alloc(0);
  let settled = false;
  const settle = (a: UpgradeAnswer) => {
    if (settled) return;
    settled = true;
    stream.off('data', onData);
    stream.off('end', onEnd);
    done(a);
  };
  const onEnd = () => settle({ error: new Error('the app closed the connection without answering the upgrade') });
  const onData = (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    const end = Math.max(buf.indexOf(HEAD_END), buf.indexOf(BARE_HEAD_END));
    if (end < 0) {
      if (buf.length > maxHeadBytes) settle({ error: Object.assign(new Error('response head too large'), { code: 'HPE_HEADER_OVERFLOW' }) });
      return;
    }
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(buf.subarray(0, 16).toString('latin1'));
    if (!status) return settle({ error: Object.assign(new Error('invalid status line'), { code: 'HPE_INVALID_CONSTANT' }) });
    if (status[1] === '101') {
      stream.pause();
      return settle({ upgraded: buf });
    }
    stream.off('data', onData);
    stream.off('end', onEnd);
    relayRefusal(stream, socket, buf, maxHeadBytes, (err) => settle(err ? { error: err } : { refused: Number(status[1]) }));
  };
  stream.on('data', onData);
  stream.once('end', onEnd);
  // Reading the open-result (readFrame) paused the stream explicitly; a 'data' listener alone does not resume it.
  stream.resume();
}

/** Relays a non-101 response to the client as its last, then closes both ends. */
function relayRefusal(stream: Duplex, socket: Duplex, first: Buffer, maxHeadBytes: number, done: (err?: Error) => void): void {
  let finished = false;
  const finish = (err?: Error) => {
    if (finished) return;
    finished = true;
    stream.off('data', feed);
    stream.destroy();
    if (err) done(err);
    else {
      socket.end();
      done();
    }
  };
  const parser = new ResponseParser(
    {
      onHead(head: ResponseHead) {
        // Framing is the relay's: the (decoded) body runs until the connection closes.
        const headers = forwardResponseHeaders(head.rawHeaders);
        let s = `HTTP/1.1 ${head.statusCode} ${head.statusMessage}\r\n`;
        for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() !== 'content-length') s += `${headers[i]!}: ${headers[i + 1]!}\r\n`;
        socket.write(`${s}Connection: close\r\n\r\n`, 'latin1');
      },
      onBody(chunk: Buffer) {
        if (!socket.write(chunk)) {
          stream.pause();
          socket.once('drain', () => stream.resume());
        }
      },
      onComplete() {
        finish();
      },
    },
    maxHeadBytes,
  );
  parser.reset(false);
  const feed = (chunk: Buffer) => {
    try {
      parser.execute(chunk);
    } catch (err) {
      finish(err as Error);
    }
  };
  stream.on('data', feed);
  stream.once('end', () => {
    try {
      parser.finish();
      finish();
    } catch (err) {
      finish(err as Error);
    }
  });
  feed(first);
}
