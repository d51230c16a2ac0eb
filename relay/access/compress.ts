/**
 * Response compression (`compression {enabled, algorithms: gzip|br}`,
 * server-wide). A response is compressed when all hold:
 *   - the client accepts the encoding (Accept-Encoding, q-values honoured; br
 *     preferred over gzip when both are allowed and accepted),
 *   - the request is not HEAD and has no Range header, the status is 2xx but
 *     not 204/206,
 *   - the app did not encode it (no Content-Encoding), did not forbid it
 *     (Cache-Control: no-transform) and sent no Content-Range,
 *   - the type is textual (text/*, JSON, JavaScript, XML, SVG, wasm, …) and not
 *     a stream (text/event-stream, NDJSON/JSON lines/JSON-seq), and the
 *     traffic class is not `streaming`,
 *   - the body is not known to be tiny (Content-Length < 1 KiB).
 * Compressible responses always get `Vary: Accept-Encoding`, compressed or
 * not, so caches keep the variants apart; compressed ones lose Content-Length
 * (chunked instead) and a strong ETag becomes weak. Bodies stream through
 * node:zlib with backpressure both ways; brotli runs at quality 4 with a
 * 1 MiB window to keep CPU and memory per response small.
 */
import zlib from 'node:zlib';
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { addVary, getHeader, removeHeader } from './header-list.js';

export type Encoding = 'gzip' | 'br';

export interface CompressionPolicy {
  br: boolean;
  gzip: boolean;
}

export const MIN_COMPRESS_BYTES = 1024;

export function compileCompression(doc: unknown): CompressionPolicy | null {
  if (!doc || typeof doc !== 'object') return null;
  const d = doc as { enabled?: unknown; algorithms?: unknown };
  if (d.enabled !== true) return null;
  const algs = Array.isArray(d.algorithms) && d.algorithms.length > 0 ? d.algorithms : ['gzip', 'br'];
  const p = { br: algs.includes('br'), gzip: algs.includes('gzip') };
  return p.br || p.gzip ? p : null;
}

const STREAM_TYPES = new Set(['text/event-stream', 'application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/x-jsonlines', 'application/json-seq']);
const APP_TYPES = new Set([
  'application/json',
  'application/javascript',
  'application/x-javascript',
  'application/ecmascript',
  'application/xml',
  'application/wasm',
  'application/graphql-response+json',
  'application/x-yaml',
  'application/yaml',
  'application/toml',
  'application/x-www-form-urlencoded',
  'image/svg+xml',
  'image/x-icon',
  'image/vnd.microsoft.icon',
  'font/ttf',
  'font/otf',
]);

/** True for textual media types worth compressing (never for streams). */
export function compressibleType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const semi = contentType.indexOf(';');
  const t = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  if (STREAM_TYPES.has(t)) return false;
  if (t.startsWith('text/')) return true;
  if (APP_TYPES.has(t)) return true;
  return t.endsWith('+json') || t.endsWith('+xml');
}

/** The encoding to use for an Accept-Encoding value, or null. */
export function negotiate(p: CompressionPolicy, acceptEncoding: string | undefined): Encoding | null {
  if (!acceptEncoding) return null;
  let br = -1;
  let gzip = -1;
  let star = -1;
  for (const part of acceptEncoding.split(',')) {
    const [name, ...params] = part.split(';');
    const token = name!.trim().toLowerCase();
    let q = 1;
    for (const prm of params) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(prm);
      if (m) q = Number(m[1]);
    }
    if (!(q >= 0 && q <= 1)) q = 0;
    if (token === 'br') br = q;
    else if (token === 'gzip' || token === 'x-gzip') gzip = Math.max(gzip, q);
    else if (token === '*') star = q;
  }
  if (br < 0) br = star;
  if (gzip < 0) gzip = star;
  const useBr = p.br && br > 0;
  const useGzip = p.gzip && gzip > 0;
  if (useBr && (!useGzip || br >= gzip)) return 'br';
  if (useGzip) return 'gzip';
  return null;
}

export interface CompressRequest {
  method: string | undefined;
  acceptEncoding: string | undefined;
  hasRange: boolean;
  /** The proxy's traffic class; `streaming` is never compressed. */
  streaming: boolean;
}

/**
 * Decides for one response and edits its raw headers accordingly (Vary,
 * Content-Encoding, Content-Length, ETag). Returns the encoding to apply, or null.
 */
export function prepareCompression(p: CompressionPolicy, req: CompressRequest, status: number, raw: string[]): Encoding | null {
  if (status < 200 || status >= 300 || status === 204 || status === 206) return null;
  if (req.streaming) return null;
  if (!compressibleType(getHeader(raw, 'content-type'))) return null;
  if (getHeader(raw, 'content-encoding') !== undefined || getHeader(raw, 'content-range') !== undefined) return null;
  const cc = getHeader(raw, 'cache-control');
  if (cc !== undefined && /(^|,)\s*no-transform\s*(,|$)/i.test(cc)) return null;
  addVary(raw, 'Accept-Encoding');
  if (req.method === 'HEAD' || req.hasRange) return null;
  const len = getHeader(raw, 'content-length');
  if (len !== undefined && Number(len) < MIN_COMPRESS_BYTES) return null;
  const enc = negotiate(p, req.acceptEncoding);
  if (enc === null) return null;
  removeHeader(raw, 'content-length');
  raw.push('Content-Encoding', enc);
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'etag' && !raw[i + 1]!.startsWith('W/')) raw[i + 1] = `W/${raw[i + 1]!}`;
  }
  return enc;
}

/** Longest an app's bytes wait inside the encoder before a sync flush sends them on. */
export const FLUSH_MS = 100;

export function createEncoder(enc: Encoding): zlib.Gzip | zlib.BrotliCompress {
  if (enc === 'gzip') return zlib.createGzip({ level: 6 });
  return zlib.createBrotliCompress({
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: 4,
      [zlib.constants.BROTLI_PARAM_LGWIN]: 20,
      [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
    },
  });
}

/**
 * Streams `from` (the app's response) through the encoder into `res`, with
 * backpressure: the encoder's own buffer pauses `from`, a full `res` pauses
 * the encoder. Any side failing tears the others down.
 */
export function pipeCompressed(from: Readable, res: ServerResponse, enc: Encoding, onChunk?: (bytes: number) => void): void {
  const z = createEncoder(enc);
  from.pipe(z);
  // What the app sent reaches the client within FLUSH_MS even when it trickles (a log, a
  // progress line a second): the encoder would otherwise hold it back, the client would see
  // nothing, and the idle timeout would end a response that is alive. A bulk transfer pays one
  // sync flush per FLUSH_MS, a few bytes each.
  let flushTimer: NodeJS.Timeout | null = null;
  const flushKind = enc === 'gzip' ? zlib.constants.Z_SYNC_FLUSH : zlib.constants.BROTLI_OPERATION_FLUSH;
  const flushNow = () => {
    flushTimer = null;
    if (!z.destroyed && !z.writableEnded) z.flush(flushKind);
  };
  from.on('data', () => {
    flushTimer ??= setTimeout(flushNow, FLUSH_MS);
  });
  const stopFlushing = () => {
    if (flushTimer !== null) clearTimeout(flushTimer);
    flushTimer = null;
  };
  from.once('end', stopFlushing);
  z.once('close', stopFlushing);
  z.on('data', (chunk: Buffer) => {
    onChunk?.(chunk.length);
    if (!res.write(chunk)) z.pause();
  });
  res.on('drain', () => z.resume());
  z.on('end', () => res.end());
  z.on('error', () => res.destroy());
  from.on('error', () => {
    z.destroy();
    res.destroy();
  });
  from.on('aborted', () => {
    z.destroy();
    res.destroy();
  });
  res.once('close', () => {
    if (!res.writableFinished) z.destroy();
  });
}
