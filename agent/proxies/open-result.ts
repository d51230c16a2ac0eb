/** Writes the agent's answer to a stream header. */
import { encodeFrame } from '../../shared/framing/length-prefixed.js';
import { errorCodeToWire, type ErrorCode } from '../../shared/errors.js';
import { OpenResultCodec } from '../../proto/index.js';
import type { Duplex } from 'node:stream';

/** `unsealed`: a sealed stream whose bytes ride the stream after all (no data connection could be had). */
export function sendOpenOk(stream: Duplex, localAddress: string, localPort: number, unsealed = false): void {
  stream.write(encodeFrame(OpenResultCodec.encode({ ok: true, localAddress, localPort, ...(unsealed ? { unsealed } : {}) })));
}

/** Refuses the stream with a code and message, then ends it. */
export function sendOpenError(stream: Duplex, code: ErrorCode, message: string): void {
  if (stream.destroyed || stream.writableEnded) return;
  stream.end(encodeFrame(OpenResultCodec.encode({ ok: false, code: errorCodeToWire(code), message })));
}

/** The message users see when nothing listens on an internal port. */
export function nothingListeningMessage(port: number, serverId: string): string {
  return `nothing is listening on port ${port} inside ${serverId}; bind your app to 0.0.0.0:${port} or 127.0.0.1:${port}`;
}
