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
 * Field values and the reason phrase are passed on unchecked for control
 * characters: node's res.writeHead() validates them when the head is
 * forwarded (the proxy turns its refusal into the same 502).
 */
import { FIELD_VALUE, PLAIN_LINES, TCHAR, matchesLower } from './http-chars.js';
import { isHopByHopAt, namesOnlyFixedFields } from './headers.js';

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
  /**
   * The header lines a proxy passes on as they are (each with its CRLF):
   * all but the hop-by-hop fields (RFC 9110 §7.6.1). null unless every line
   * ended in CRLF, every value holds only field-value characters, no
   * Transfer-Encoding came and Connection names no further fields: then
   * the proxy rebuilds the head from rawHeaders (headers.ts).
   */
  lines: string | null;
  /** A Date field came. */
  hasDate: boolean;
  /** The Content-Length field's value, -1 without one. */
  contentLength: number;
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

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

export class ResponseParser {
  private state = State.Done;
  private noBody = false;
  private upgrade = false;
  /** Bytes of an unfinished head (or trailer section) seen in earlier chunks. */
  private pending: Buffer = EMPTY;
  private remaining = 0;
  private digits = 0;

  constructor(
    private readonly sink: ResponseSink,
    private readonly maxHeadBytes: number,
  ) {}

  /**
   * Expects a new response; `head` = the request was HEAD (no body whatever the headers say);
   * `upgrade` = it asked for an upgrade, so a 101 is the final head and the bytes after it are
   * the new protocol's (execute() returns where they start).
   */
  reset(head: boolean, upgrade = false): void {
    this.state = State.Head;
    this.noBody = head;
    this.upgrade = upgrade;
    this.pending = EMPTY;
    this.remaining = 0;
    this.digits = 0;
  }

  /** True once the whole response (head and body) was parsed. */
  get done(): boolean {
    return this.state === State.Done;
  }

  /** True while the head is not complete yet. */
  get inHead(): boolean {
    return this.state === State.Head;
  }

  /** Hands on up to `remaining` body bytes from pos (the chunk itself when it is all body); returns the new pos. */
  private counted(chunk: Buffer, pos: number): number {
    const n = Math.min(this.remaining, chunk.length - pos);
    this.remaining -= n;
    this.sink.onBody(pos === 0 && n === chunk.length ? chunk : chunk.subarray(pos, pos + n));
    return pos + n;
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
        case State.Length:
          pos = this.counted(chunk, pos);
          if (this.remaining === 0) this.complete();
          break;
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
        case State.ChunkData:
          pos = this.counted(chunk, pos);
          if (this.remaining === 0) this.state = State.ChunkDataEnd;
          break;
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
    // Lines end in CRLF or a bare LF; the block ends with an empty line. Indices, not split(): no garbage per line.
    let nl = text.indexOf('\n');
    const statusEnd = nl > 0 && text.charCodeAt(nl - 1) === CR ? nl - 1 : nl;
    if (statusEnd < 12 || !text.startsWith('HTTP/1.') || text.charCodeAt(8) !== 0x20) throw new ResponseParseError('HPE_INVALID_CONSTANT', 'invalid status line');
    const minor = text.charCodeAt(7);
    if (minor !== 0x30 && minor !== 0x31) throw new ResponseParseError('HPE_INVALID_VERSION', 'unsupported HTTP version');
    const d0 = text.charCodeAt(9) - 48;
    const d1 = text.charCodeAt(10) - 48;
    const d2 = text.charCodeAt(11) - 48;
    if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) throw new ResponseParseError('HPE_INVALID_STATUS', 'invalid status code');
    if (statusEnd > 12 && text.charCodeAt(12) !== 0x20) throw new ResponseParseError('HPE_INVALID_STATUS', 'invalid status code');
    const statusCode = d0 * 100 + d1 * 10 + d2;
    // Control characters in field values are not checked here: they cannot move a message boundary
    // (lines end at LF), and res.writeHead() refuses them when the head is forwarded. The reason
    // phrase is (HTAB, SP, VCHAR, obs-text only): node keeps a refused one on the response, where
    // it would poison the relay's own error answer too.
    const statusMessage = statusEnd > 13 ? text.slice(13, statusEnd) : '';
    for (let i = 0; i < statusMessage.length; i++) {
      const c = statusMessage.charCodeAt(i);
      if ((c < 0x20 && c !== 0x09) || c === 0x7f) throw new ResponseParseError('HPE_INVALID_STATUS', 'invalid character in the reason phrase');
    }

    let contentLength = -1;
    let chunked = false;
    let transferEncoding = false;
    let close = minor === 0x30;
    let contentType: string | undefined;
    let contentDisposition: string | undefined;
    let hasDate = false;
    // Whether the lines can pass as they are, and the dropped (hop-by-hop) lines' [start, end) offsets.
    let plain = statusEnd !== nl;
    let drops: number[] | null = null;
    const first = nl + 1;
    // The usual head (token names, clean values, CRLF) is checked by one regular expression;
    // any other is checked character by character below, which says what is wrong.
    PLAIN_LINES.lastIndex = first;
    const checked = plain && PLAIN_LINES.test(text);
    // One pass over the lines: names compared in place, values sliced only for the fields read here.
    for (;;) {
      const start = nl + 1;
      nl = text.indexOf('\n', start);
      if (nl < 0) break; // not reached: the block ends with an empty line
      const end = nl > start && text.charCodeAt(nl - 1) === CR ? nl - 1 : nl;
      if (end === start) break; // the empty line
      const colon = text.indexOf(':', start);
      if (colon <= start || colon >= end) throw new ResponseParseError('HPE_INVALID_HEADER_TOKEN', 'invalid header line');
      // Optional whitespace (SP / HTAB) around the value.
      let vs = colon + 1;
      let ve = end;
      while (vs < ve && isOws(text.charCodeAt(vs))) vs++;
      while (ve > vs && isOws(text.charCodeAt(ve - 1))) ve--;
      if (!checked) {
        if (end === nl) plain = false; // a bare LF
        for (let k = start; k < colon; k++) {
          if (TCHAR[text.charCodeAt(k)] !== 1) throw new ResponseParseError('HPE_INVALID_HEADER_TOKEN', 'invalid header name');
        }
        if (plain) {
          for (let k = vs; k < ve; k++) {
            if (FIELD_VALUE[text.charCodeAt(k)] !== 1) {
              plain = false;
              break;
            }
          }
        }
      }
      const length = colon - start;
      // Hop-by-hop fields never pass (headers.ts's list, names compared in place).
      const drop = isHopByHopAt(text, start, length);
      // The framing and connection fields read here, by length first.
      switch (length) {
        case 4:
          if (matchesLower(text, start, 'date')) hasDate = true;
          break;
        case 10:
          if (matchesLower(text, start, 'connection')) {
            // "keep-alive", the usual value, names nothing else and is not "close".
            if (ve - vs !== 10 || !matchesLower(text, vs, 'keep-alive')) {
              const value = text.slice(vs, ve);
              if (/(?:^|,)[ \t]*close[ \t]*(?:,|$)/i.test(value)) close = true;
              if (!namesOnlyFixedFields(value)) plain = false;
            }
          }
          break;
        case 12:
          if (matchesLower(text, start, 'content-type')) contentType = text.slice(vs, ve);
          break;
        case 14:
          if (matchesLower(text, start, 'content-length')) {
            const n = parseContentLength(text.slice(vs, ve));
            if (n < 0 || (contentLength >= 0 && n !== contentLength)) throw new ResponseParseError('HPE_INVALID_CONTENT_LENGTH', 'invalid Content-Length');
            contentLength = n;
          }
          break;
        case 17:
          if (matchesLower(text, start, 'transfer-encoding')) {
            transferEncoding = true;
            plain = false;
            // Chunked must be the final coding; anything after it means "until close".
            chunked = /(?:^|,)[ \t]*chunked$/i.test(text.slice(vs, ve));
          }
          break;
        case 19:
          if (matchesLower(text, start, 'content-disposition')) contentDisposition = text.slice(vs, ve);
          break;
      }
      if (drop) (drops ??= []).push(start, nl + 1);
    }
    const blankAt = nl + 1 - (text.charCodeAt(nl - 1) === CR ? 2 : 1);

    if (statusCode === 101) {
      // Only valid as the answer to an upgrade request.
      if (!this.upgrade) throw new ResponseParseError('HPE_INVALID_STATUS', '101 Switching Protocols without an upgrade request');
      this.state = State.Done;
      this.sink.onHead(new ParsedHead(statusCode, statusMessage, contentType, contentDisposition, false, hasDate, contentLength, text, first, plain ? blankAt : -1, drops));
      this.sink.onComplete();
      return;
    }
    if (statusCode < 200) return; // interim response (100, 103, …): skip it, the final one follows
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
    this.remaining = next === State.Length ? contentLength : 0;
    this.digits = 0;
    this.state = next;
    this.sink.onHead(new ParsedHead(statusCode, statusMessage, contentType, contentDisposition, !close, hasDate, contentLength, text, first, plain ? blankAt : -1, drops));
    if (next === State.Done) this.sink.onComplete();
  }
}

/**
 * A parsed response head. The header list and the pass-through lines are
 * cut out of the head's text only when asked for: the direct path reads
 * `lines`, the general path `rawHeaders`.
 */
class ParsedHead implements ResponseHead {
  private raw: string[] | null = null;
  private kept: string | null | undefined;

  constructor(
    readonly statusCode: number,
    readonly statusMessage: string,
    readonly contentType: string | undefined,
    readonly contentDisposition: string | undefined,
    readonly keepAlive: boolean,
    readonly hasDate: boolean,
    readonly contentLength: number,
    /** The whole head (status line to blank line). */
    private readonly text: string,
    /** Where the header lines start. */
    private readonly first: number,
    /** Where the blank line starts, or -1 when the lines cannot pass as they are. */
    private readonly blankAt: number,
    /** [start, end) offsets of the hop-by-hop lines. */
    private readonly drops: number[] | null,
  ) {}

  get rawHeaders(): string[] {
    if (this.raw === null) this.raw = headerList(this.text, this.first);
    return this.raw;
  }

  get lines(): string | null {
    if (this.kept !== undefined) return this.kept;
    if (this.blankAt < 0) return (this.kept = null);
    const d = this.drops;
    let out = '';
    let from = this.first;
    if (d !== null) {
      for (let i = 0; i < d.length; i += 2) {
        out += this.text.slice(from, d[i]);
        from = d[i + 1]!;
      }
    }
    return (this.kept = out + this.text.slice(from, this.blankAt));
  }
}

/** [name, value, …] of a head whose lines were already checked (values trimmed of OWS). */
function headerList(text: string, first: number): string[] {
  const raw: string[] = [];
  let start = first;
  for (;;) {
    const nl = text.indexOf('\n', start);
    if (nl < 0) return raw;
    const end = nl > start && text.charCodeAt(nl - 1) === CR ? nl - 1 : nl;
    if (end === start) return raw;
    const colon = text.indexOf(':', start);
    let vs = colon + 1;
    let ve = end;
    while (vs < ve && isOws(text.charCodeAt(vs))) vs++;
    while (ve > vs && isOws(text.charCodeAt(ve - 1))) ve--;
    raw.push(text.slice(start, colon), text.slice(vs, ve));
    start = nl + 1;
  }
}

/** SP or HTAB. */
function isOws(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/** Content-Length value: digits, or a list of identical digit strings ("5, 5"); -1 when invalid. */
function parseContentLength(v: string): number {
  // Fast path: plain digits.
  if (v.length > 0 && v.length <= 15) {
    let n = 0;
    let i = 0;
    for (; i < v.length; i++) {
      const c = v.charCodeAt(i) - 48;
      if (c < 0 || c > 9) break;
      n = n * 10 + c;
    }
    if (i === v.length) return n;
  }
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
