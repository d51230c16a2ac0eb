/**
 * Reads exactly one length-prefixed message from the front of a readable
 * stream (a mux stream's header or open-result) and puts any bytes after it
 * back, so the stream can then be piped as raw bytes.
 */
import type { Duplex } from 'node:stream';
import { PorticoError } from '../errors.js';
import { FrameDecoder, MAX_MESSAGE_BYTES } from './length-prefixed.js';

export function readFrame(stream: Duplex, timeoutMs: number, maxBytes = MAX_MESSAGE_BYTES): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const decoder = new FrameDecoder(maxBytes);
    let done = false;
    const finish = (err: Error | null, msg?: Buffer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', onError);
      if (err) reject(err);
      else resolve(msg!);
    };
    const onData = (chunk: Buffer) => {
      let msgs: Buffer[];
      try {
        msgs = decoder.feed(chunk, 1);
      } catch (err) {
        finish(err as Error);
        return;
      }
      if (msgs.length === 0) return;
      stream.pause();
      // Bytes past the message belong to the raw stream: put them back.
      const rest = decoder.drain();
      if (rest.length > 0) stream.unshift(rest);
      finish(null, msgs[0]);
    };
    const onEnd = () => finish(new PorticoError('PROTOCOL_ERROR', 'stream ended before its header arrived'));
    const onError = (err: Error) => finish(err);
    const timer = setTimeout(() => finish(new PorticoError('TIMEOUT', `no stream header within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
    stream.once('error', onError);
  });
}
