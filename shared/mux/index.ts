export * from './constants.js';
export { encodeHeader, encodeFrameHeader, decodeHeader, type FrameHeader } from './frame.js';
export { FrameDecoder, type FrameHandler } from './decoder.js';
export { MuxStream, streamResetError } from './stream.js';
export { Session, type SessionOptions } from './session.js';
