/**
 * Traffic-aware idle timeouts (SPEC "HTTPS web proxy"): a request is classed
 * from its path and headers, then again from the response headers; the class
 * only ever moves to a longer timeout (a response that turns out to be a file
 * gets the download timeout). WebSocket has none.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { RelayConfig } from '../../shared/config/types.js';

export type TrafficClass = 'standard' | 'streaming' | 'download' | 'websocket';

/** Chat / streaming endpoints, matched as whole path segments anywhere in the path. */
const STREAMING_PATH = /(?:^|\/)(?:api\/chat|chat\/completions|api\/generate|generate|stream|events)(?:\/|$)/;
const STREAMING_TYPE = /^\s*(?:text\/event-stream|application\/x-ndjson|application\/ndjson|application\/jsonl|application\/stream\+json)\b/i;
const STREAMING_ACCEPT = /(?:text\/event-stream|application\/x-ndjson|application\/ndjson)/i;
/** Binary bodies: files, archives, media, model weights. */
const BINARY_TYPE =
  /^\s*(?:application\/(?:octet-stream|zip|gzip|x-gzip|x-tar|x-bzip2|x-xz|zstd|x-7z-compressed|x-rar-compressed|pdf|vnd\.|x-binary|x-hdf5?|x-npy|x-parquet|wasm)|video\/|audio\/|image\/(?:tiff|x-))/i;

const RANK: Record<TrafficClass, number> = { standard: 0, streaming: 1, download: 2, websocket: 3 };

function longer(a: TrafficClass, b: TrafficClass): TrafficClass {
  return RANK[b] > RANK[a] ? b : a;
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/** The class a request starts in. */
export function classifyRequest(url: string, headers: IncomingHttpHeaders): TrafficClass {
  const upgrade = headers.upgrade;
  if (upgrade !== undefined && upgrade.toLowerCase() === 'websocket') return 'websocket';
  if (headers.range !== undefined) return 'download';
  const ct = headers['content-type'];
  if (ct !== undefined && BINARY_TYPE.test(ct)) return 'download';
  const accept = headers.accept;
  if (accept !== undefined && STREAMING_ACCEPT.test(accept)) return 'streaming';
  if (STREAMING_PATH.test(pathOf(url))) return 'streaming';
  return 'standard';
}

/** The response headers the class depends on. */
export interface ResponseClassHeaders {
  contentType: string | undefined;
  contentDisposition: string | undefined;
}

/** The class once the response headers are known (never shorter than the request's). */
export function classifyResponse(current: TrafficClass, statusCode: number, headers: ResponseClassHeaders): TrafficClass {
  let c: TrafficClass = statusCode === 206 ? 'download' : 'standard';
  const disposition = headers.contentDisposition;
  if (disposition !== undefined && /^\s*attachment\b/i.test(disposition)) c = 'download';
  const ct = headers.contentType;
  if (ct !== undefined) {
    if (BINARY_TYPE.test(ct)) c = 'download';
    else if (STREAMING_TYPE.test(ct)) c = longer(c, 'streaming');
  }
  return longer(current, c);
}

/** Idle timeout in ms for a class; 0 = none. */
export function idleTimeoutMs(c: TrafficClass, t: RelayConfig['https']['timeouts']): number {
  switch (c) {
    case 'standard':
      return t.standard;
    case 'streaming':
      return t.streaming;
    case 'download':
      return t.download;
    case 'websocket':
      return 0;
  }
}
