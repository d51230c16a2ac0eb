/** yamux wire constants (hashicorp/yamux spec.md) and Portico's defaults. */

/** The only protocol version defined by the spec. */
export const YAMUX_VERSION = 0;

/** Every frame starts with a fixed 12-byte header. */
export const HEADER_LENGTH = 12;

/** Frame types (header byte 1). */
export const FrameType = {
  Data: 0x0,
  WindowUpdate: 0x1,
  Ping: 0x2,
  GoAway: 0x3,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Flag bits (header bytes 2-3). */
export const Flag = {
  SYN: 0x1,
  ACK: 0x2,
  FIN: 0x4,
  RST: 0x8,
} as const;
export type Flag = (typeof Flag)[keyof typeof Flag];

/** GoAway error codes carried in the length field. */
export const GoAwayCode = {
  Normal: 0x0,
  ProtocolError: 0x1,
  InternalError: 0x2,
} as const;
export type GoAwayCode = (typeof GoAwayCode)[keyof typeof GoAwayCode];

/** Window every stream starts with on both sides (fixed by the spec). */
export const INITIAL_STREAM_WINDOW = 256 * 1024;
/** Our default receive window per stream (the extra is granted with SYN/ACK). */
export const DEFAULT_MAX_STREAM_WINDOW = 4 * 1024 * 1024;
/** Largest window a peer may grant us: the length field is a uint32. */
export const MAX_WINDOW = 0xffff_ffff;
/** Largest stream id; after it the session cannot open more streams. */
export const MAX_STREAM_ID = 0xffff_ffff;
/**
 * Largest data payload we put in one frame: one SocketReader read (256 KiB)
 * goes out as one frame; still small enough to interleave streams fairly.
 */
export const MAX_DATA_FRAME = 256 * 1024;
/** Payloads up to this size are copied next to their header (one socket write). */
export const SMALL_PAYLOAD = 2048;

export const DEFAULT_KEEPALIVE_INTERVAL = 10_000;
export const DEFAULT_KEEPALIVE_TIMEOUT = 30_000;
export const DEFAULT_MAX_STREAMS = 4096;
/** Default timeout of Session.ping(). */
export const DEFAULT_PING_TIMEOUT = 10_000;
