/**
 * Incremental HTTP/1.1 response parser for the web proxy's upstream leg (no
 * I/O): the status line and headers, then the body framing of RFC 9112 §6.3
 * — none (HEAD, 1xx, 204, 304), Content-Length, chunked (decoded; chunk
 * extensions and trailers are dropped) or until the stream closes. Interim
 * 1xx responses are skipped. Input may be split anywhere; body slices are
 * views of the input, never copies.
 *
 * One parser serves one upstream stream for its whole life: reset() before
 * each request, execute() with every chunk, finish() at end of stream.
 * Errors carry llhttp-style codes (HPE_*), which the proxy names in its 502.
 */

/** The head of a final (non-1xx) response. */
export interface ResponseHead {
  statusCode: number;
  statusMessage: string;
  /** [name, value, name, value, …] as received (value trimmed). */
  rawHeaders: string[];
  /** Content-Type and Content-Disposition, for the traffic class. */
  contentType: string | undefined;
  contentDisposition: string | undefined;
  /** The stream can carry another request after this response (HTTP/1.1, no Connection: close, self-delimited body). */
  keepAlive: boolean;
}

export interface ResponseSink {
  onHead(head: ResponseHead): void;
  onBody(chunk: Buffer): void;
  /** The response is complete. */
  onComplete(): void;
}

export class ResponseParseError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const enum State {
  Head,
  Length,
  ChunkSize,
  ChunkExt,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  UntilClose,
  Done,
}

const CR = 13;
const LF = 10;
/** Hex digits of a chunk size (13 keeps it below 2^52). */
const MAX_CHUNK_SIZE_DIGITS = 13;
const EMPTY = Buffer.alloc(0);

/** tchar of RFC 9110 §5.6.2. */
const TOKEN = (() => {
  const t = new Uint8Array(256);
  for (const c of "!#$%&'*+-.^_`|~") t[c.charCodeAt(0)] = 1;
  for (let c = 48; c <= 57; c++) t[c] = 1;
  for (let c = 65; c <= 90; c++) t[c] = 1;
  for (let c = 97; c <= 122; c++) t[c] = 1;
  return t;
})();

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

export class ResponseParser {
  private state = State.Done;
  private noBody = false;
  /** Bytes of an unfinished head (or trailer section) seen in earlier chunks. */
  private pending: Buffer = EMPTY;
  private remaining = 0;
  private digits = 0;
  private keepAlive = false;

  constructor(
    private readonly sink: ResponseSink,
    private readonly maxHeadBytes: number,
  ) {}

  /** Expects a new response; `head` = the request was HEAD (no body whatever the headers say). */
  reset(head: boolean): void {
    this.state = State.Head;
    this.noBody = head;
    this.pending = EMPTY;
    this.remaining = 0;
    this.digits = 0;
    this.keepAlive = false;
  }

  /** True once the whole response (head and body) was parsed. */
  get done(): boolean {
    return this.state === State.Done;
  }

  /** True while the head is not complete yet. */
  get inHead(): boolean {
    return this.state === State.Head;
  }

  /**
   * Parses a chunk; returns how many bytes belonged to the response (less
   * than chunk.length only when the response ended inside the chunk).
   * Throws ResponseParseError on malformed input.
   */
  execute(chunk: Buffer): number {
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      switch (this.state) {
        case State.Head:
          pos = this.head(chunk, pos);
          break;
        case State.Length: {
          const n = Math.min(this.remaining, len - pos);
          this.remaining -= n;
          this.sink.onBody(pos === 0 && n === len ? chunk : chunk.subarray(pos, pos + n));
          pos += n;
          if (this.remaining === 0) this.complete();
          break;
        }
        case State.UntilClose:
          this.sink.onBody(pos === 0 ? chunk : chunk.subarray(pos));
          pos = len;
          break;
        case State.ChunkSize: {
          const c = chunk[pos]!;
          const v = hexValue(c);
          if (v >= 0) {
            if (++this.digits > MAX_CHUNK_SIZE_DIGITS) throw new ResponseParseError('HPE_INVALID_CHUNK_SIZE', 'chunk size too large');
            this.remaining = this.remaining * 16 + v;
            pos++;
          } else if (this.digits === 0) {
            throw new ResponseParseError('HPE_INVALID_CHUNK_SIZE', 'invalid chunk size');
          } else if (c === LF) {
            pos++;
            this.chunkSizeDone();
          } else if (c === CR || c === 0x3b /* ; */ || c === 0x20 || c === 0x09) {
            this.state = State.ChunkExt;
            pos++;
          } else throw new ResponseParseError('HPE_INVALID_CHUNK_SIZE', 'invalid chunk size');
          break;
        }
        case State.ChunkExt: {
          // Chunk extensions (and the CR) up to the LF are ignored.
          const lf = chunk.indexOf(LF, pos);
          if (lf < 0) {
            pos = len;
            break;
          }
          pos = lf + 1;
          this.chunkSizeDone();
          break;
        }
        case State.ChunkData: {
          const n = Math.min(this.remaining, len - pos);
          this.remaining -= n;
          this.sink.onBody(pos === 0 && n === len ? chunk : chunk.subarray(pos, pos + n));
          pos += n;
          if (this.remaining === 0) this.state = State.ChunkDataEnd;
          break;
        }
        case State.ChunkDataEnd: {
          // CRLF (or a bare LF) after the chunk data.
          const c = chunk[pos]!;
          if (c === CR && this.digits === 0) {
            this.digits = 1; // marks "CR seen"
            pos++;
          } else if (c === LF) {
            pos++;
            this.digits = 0;
            this.remaining = 0;
            this.state = State.ChunkSize;
          } else throw new ResponseParseError('HPE_STRICT', 'expected CRLF after chunk data');
          break;
        }
        case State.Trailers:
          pos = this.trailers(chunk, pos);
          break;
        case State.Done:
          return pos;
      }
    }
    return pos;
  }

  /** The stream ended: completes a close-delimited body; throws if the response was cut short. */
  finish(): void {
    if (this.state === State.UntilClose) {
      this.complete();
      return;
    }
    if (this.state === State.Done) return;
    if (this.state === State.Head && this.pending.length === 0) throw new ResponseParseError('ECONNRESET', 'socket hang up');
    throw new ResponseParseError('HPE_INVALID_EOF_STATE', 'the response ended early');
  }

  private complete(): void {
    this.state = State.Done;
    this.sink.onComplete();
  }

  private chunkSizeDone(): void {
    this.digits = 0;
    if (this.remaining === 0) {
      this.state = State.Trailers;
      return;
    }
    this.state = State.ChunkData;
  }

  /**
   * Finds the end of a header block (an empty line) from `from`, with what
   * earlier chunks left in `pending`; returns the index just past it in the
   * combined buffer `buf`, or -1.
   */
  private static blockEnd(buf: Buffer, from: number, start: number): number {
    // A line ends at LF; the block ends at a line that is empty or just CR.
    let lf = buf.indexOf(LF, from);
    while (lf >= 0) {
      if (lf === start || (lf === start + 1 && buf[start] === CR)) return lf + 1;
      const prev = buf[lf - 1];
      if (prev === LF) return lf + 1;
      if (prev === CR && lf >= start + 2 && buf[lf - 2] === LF) return lf + 1;
      lf = buf.indexOf(LF, lf + 1);
    }
    return -1;
  }

  /** Collects a header block split over chunks; returns [buffer, end] once complete, else null (and keeps the bytes). */
  private block(chunk: Buffer, pos: number, what: string): { buf: Buffer; start: number; end: number; used: number } | null {
    let buf: Buffer;
    let start: number;
    let from: number;
    if (this.pending.length === 0) {
      buf = chunk;
      start = pos;
      from = pos;
    } else {
      const prevLen = this.pending.length;
      buf = Buffer.concat([this.pending, chunk.subarray(pos)]);
      start = 0;
      // Re-scan a little of the old bytes: the terminator may straddle the boundary.
      from = Math.max(0, prevLen - 3);
    }
    const end = ResponseParser.blockEnd(buf, from, start);
    if (end < 0) {
      if (buf.length - start > this.maxHeadBytes) throw new ResponseParseError('HPE_HEADER_OVERFLOW', `${what} larger than ${this.maxHeadBytes} bytes`);
      this.pending = start === 0 && buf !== chunk ? buf : Buffer.from(buf.subarray(start));
      return null;
    }
    if (end - start > this.maxHeadBytes) throw new ResponseParseError('HPE_HEADER_OVERFLOW', `${what} larger than ${this.maxHeadBytes} bytes`);
    const prevLen = this.pending.length;
    this.pending = EMPTY;
    // How much of `chunk` the block used.
    const used = buf === chunk ? end - pos : end - prevLen;
    return { buf, start, end, used };
  }

  private head(chunk: Buffer, pos: number): number {
    // Stray CR/LF between messages are skipped (as llhttp does).
    if (this.pending.length === 0) {
      while (pos < chunk.length && (chunk[pos] === CR || chunk[pos] === LF)) pos++;
      if (pos === chunk.length) return pos;
    }
    const b = this.block(chunk, pos, 'response head');
    if (b === null) return chunk.length;
    this.parseHead(b.buf.toString('latin1', b.start, b.end));
    return pos + b.used;
  }

  private trailers(chunk: Buffer, pos: number): number {
    const b = this.block(chunk, pos, 'trailer section');
    if (b === null) return chunk.length;
    this.complete();
    return pos + b.used;
  }

  private parseHead(text: string): void {
    // Lines end in CRLF or a bare LF; the block ends with an empty line.
    const lines = text.split('\n');
    let status = lines[0]!;
    if (status.endsWith('\r')) status = status.slice(0, -1);
    if (status.length < 12 || !status.startsWith('HTTP/1.') || status.charCodeAt(8) !== 0x20) throw new ResponseParseError('HPE_INVALID_CONSTANT', 'invalid status line');
    const minor = status.charCodeAt(7);
    if (minor !== 0x30 && minor !== 0x31) throw new ResponseParseError('HPE_INVALID_VERSION', 'unsupported HTTP version');
    const d0 = status.charCodeAt(9) - 48;
    const d1 = status.charCodeAt(10) - 48;
    const d2 = status.charCodeAt(11) - 48;
    if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) throw new ResponseParseError('HPE_INVALID_STATUS', 'invalid status code');
    if (status.length > 12 && status.charCodeAt(12) !== 0x20) throw new ResponseParseError('HPE_INVALID_STATUS', 'invalid status code');
    const statusCode = d0 * 100 + d1 * 10 + d2;
    const statusMessage = status.length > 13 ? status.slice(13) : '';
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(statusMessage)) throw new ResponseParseError('HPE_INVALID_STATUS', 'invalid reason phrase');

    const raw: string[] = [];
    let contentLength = -1;
    let chunked = false;
    let transferEncoding = false;
    let close = minor === 0x30;
    let contentType: string | undefined;
    let contentDisposition: string | undefined;
    // The last element is '' (after the final LF) and the one before it the empty line.
    const last = lines.length - 2;
    for (let i = 1; i < last; i++) {
      let line = lines[i]!;
      if (line.endsWith('\r')) line = line.slice(0, -1);
      const colon = line.indexOf(':');
      if (colon <= 0) throw new ResponseParseError('HPE_INVALID_HEADER_TOKEN', 'invalid header line');
      for (let k = 0; k < colon; k++) {
        if (TOKEN[line.charCodeAt(k)] !== 1) throw new ResponseParseError('HPE_INVALID_HEADER_TOKEN', 'invalid header name');
      }
      const name = line.slice(0, colon);
      const value = line.slice(colon + 1).trim();
      if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) throw new ResponseParseError('HPE_INVALID_HEADER_TOKEN', 'invalid header value');
      raw.push(name, value);
      // Framing and connection headers, by length first (cheap).
      switch (name.length) {
        case 10:
          if (name.toLowerCase() === 'connection' && /(?:^|,)\s*close\s*(?:,|$)/i.test(value)) close = true;
          break;
        case 12:
          if (name.toLowerCase() === 'content-type') contentType = value;
          break;
        case 14:
          if (name.toLowerCase() === 'content-length') {
            const n = parseContentLength(value);
            if (n < 0 || (contentLength >= 0 && n !== contentLength)) throw new ResponseParseError('HPE_INVALID_CONTENT_LENGTH', 'invalid Content-Length');
            contentLength = n;
          }
          break;
        case 17:
          if (name.toLowerCase() === 'transfer-encoding') {
            transferEncoding = true;
            // Chunked must be the final coding; anything after it means "until close".
            chunked = /(?:^|,)\s*chunked\s*$/i.test(value);
          }
          break;
        case 19:
          if (name.toLowerCase() === 'content-disposition') contentDisposition = value;
          break;
      }
    }

    if (statusCode < 200) {
      // 101 is only valid as the answer to an upgrade, which this path never sends.
      if (statusCode === 101) throw new ResponseParseError('HPE_INVALID_STATUS', '101 Switching Protocols without an upgrade request');
      return; // interim response (100, 103, …): skip it, the final one follows
    }
    let next: State;
    if (this.noBody || statusCode === 204 || statusCode === 304) next = State.Done;
    else if (transferEncoding) {
      next = chunked ? State.ChunkSize : State.UntilClose;
      // Both framings at once is a smuggling shape: use chunked, never reuse the stream.
      if (contentLength >= 0 || !chunked) close = true;
    } else if (contentLength >= 0) next = contentLength === 0 ? State.Done : State.Length;
    else {
      next = State.UntilClose;
      close = true;
    }
    this.keepAlive = !close;
    this.remaining = next === State.Length ? contentLength : 0;
    this.digits = 0;
    this.state = next;
    this.sink.onHead({ statusCode, statusMessage, rawHeaders: raw, contentType, contentDisposition, keepAlive: this.keepAlive });
    if (next === State.Done) this.sink.onComplete();
  }
}

/** Content-Length value: digits, or a list of identical digit strings ("5, 5"); -1 when invalid. */
function parseContentLength(v: string): number {
  let n = -1;
  for (const part of v.split(',')) {
    const p = part.trim();
    if (!/^\d{1,15}$/.test(p)) return -1;
    const x = Number(p);
    if (n >= 0 && x !== n) return -1;
    n = x;
  }
  return n;
}
