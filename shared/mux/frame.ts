import { PorticoError } from '../errors.js';
import { FrameType, HEADER_LENGTH, YAMUX_VERSION } from './constants.js';

/** A decoded yamux frame header. For data frames `length` is the payload size. */
export interface FrameHeader {
  version: number;
  type: FrameType;
  flags: number;
  streamId: number;
  /** Payload length (Data), window delta (WindowUpdate), opaque value (Ping) or error code (GoAway). */
  length: number;
}

/**
 * Writes a 12-byte header into `buf` at `offset` (caller owns and may reuse the
 * buffer, as long as it was not handed to a socket yet). Returns offset + 12.
 */
export function encodeHeader(buf: Uint8Array, offset: number, type: number, flags: number, streamId: number, length: number): number {
  buf[offset] = YAMUX_VERSION;
  buf[offset + 1] = type;
  buf[offset + 2] = (flags >>> 8) & 0xff;
  buf[offset + 3] = flags & 0xff;
  buf[offset + 4] = streamId >>> 24;
  buf[offset + 5] = (streamId >>> 16) & 0xff;
  buf[offset + 6] = (streamId >>> 8) & 0xff;
  buf[offset + 7] = streamId & 0xff;
  buf[offset + 8] = length >>> 24;
  buf[offset + 9] = (length >>> 16) & 0xff;
  buf[offset + 10] = (length >>> 8) & 0xff;
  buf[offset + 11] = length & 0xff;
  return offset + HEADER_LENGTH;
}

/** Encodes a header object into a new 12-byte buffer (tests, tools; not the hot path). */
export function encodeFrameHeader(h: Omit<FrameHeader, 'version'>): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_LENGTH);
  encodeHeader(buf, 0, h.type, h.flags, h.streamId, h.length);
  return buf;
}

/** Decodes and validates the header at `offset`; throws PROTOCOL_ERROR on a bad version or type. */
export function decodeHeader(buf: Uint8Array, offset: number): FrameHeader {
  const version = buf[offset]!;
  if (version !== YAMUX_VERSION) {
    throw new PorticoError('PROTOCOL_ERROR', `yamux: unsupported version ${version}`, { version });
  }
  const type = buf[offset + 1]!;
  if (type > FrameType.GoAway) {
    throw new PorticoError('PROTOCOL_ERROR', `yamux: unknown frame type ${type}`, { type });
  }
  return {
    version,
    type: type as FrameType,
    flags: (buf[offset + 2]! << 8) | buf[offset + 3]!,
    streamId: ((buf[offset + 4]! << 24) | (buf[offset + 5]! << 16) | (buf[offset + 6]! << 8) | buf[offset + 7]!) >>> 0,
    length: ((buf[offset + 8]! << 24) | (buf[offset + 9]! << 16) | (buf[offset + 10]! << 8) | buf[offset + 11]!) >>> 0,
  };
}
