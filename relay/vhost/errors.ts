/**
 * Error answers of the web proxy: JSON (the management API's envelope) for
 * API clients, a small self-contained HTML page for browsers. The message
 * says what is wrong and, where it helps, what to do.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { ErrorCode } from '../../shared/errors.js';

export interface ProxyError {
  status: number;
  code: ErrorCode;
  message: string;
  /** A second sentence for the HTML page (what to do). */
  hint?: string;
  /** Extra response headers (e.g. Retry-After, WWW-Authenticate), lowercase names. */
  headers?: Record<string, string>;
}

export const proxyErrors = {
  unknownHost: (host: string, domain: string): ProxyError => ({
    status: 404,
    code: 'NOT_FOUND',
    message: `no HTTPS endpoint is published at ${host || '(no Host header)'}`,
    hint: `Endpoints look like https://<token>.secure.${domain} or https://<owner>-<name>.${domain}. Custom domains and custom certificates are not supported.`,
  }),
  proxyDisabled: (serverId: string): ProxyError => ({
    status: 404,
    code: 'NOT_FOUND',
    message: `the HTTPS proxy of server ${serverId} is turned off`,
    hint: `Its operator can turn it on with PUT /v1/servers/${serverId}/proxy {"enabled": true}.`,
  }),
  agentOffline: (serverId: string): ProxyError => ({
    status: 502,
    code: 'AGENT_OFFLINE',
    message: `server ${serverId} is not connected`,
    hint: 'The Portico agent inside the container is not running or cannot reach the relay; it reconnects by itself once it can.',
  }),
  nothingListening: (message: string): ProxyError => ({
    status: 502,
    code: 'NOTHING_LISTENING',
    message,
    hint: 'Start your app on that port (for example uvicorn --host 0.0.0.0 --port 8080), then reload.',
  }),
  upstreamFailed: (message: string): ProxyError => ({ status: 502, code: 'UPSTREAM_FAILED', message }),
  idleTimeout: (port: number, serverId: string, seconds: number, kind: string): ProxyError => ({
    status: 504,
    code: 'TIMEOUT',
    message: `the app on port ${port} inside ${serverId} sent nothing for ${seconds} s (${kind} idle timeout)`,
    hint: 'For long jobs stream the output (text/event-stream or application/x-ndjson, with a heartbeat every 15-30 s) or use a path such as /stream.',
  }),
  shuttingDown: (): ProxyError => ({ status: 503, code: 'SHUTTING_DOWN', message: 'the relay is restarting; retry in a moment' }),
  // ---- health and replicas (relay/observability.ts) ----
  noHealthyReplica: (group: string, members: number): ProxyError => ({
    status: 503,
    code: 'UPSTREAM_FAILED',
    message: `no replica of group "${group}" can take requests now (${members} member${members === 1 ? '' : 's'}: offline or failing health checks)`,
    hint: 'Traffic resumes as soon as one replica is online and passes its health check; retry shortly.',
  }),
};

/** JSON unless the client prefers HTML (browsers send text/html first). */
export function wantsHtml(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  const html = accept.indexOf('text/html');
  if (html < 0) return false;
  const json = accept.indexOf('json');
  return json < 0 || html < json;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function errorBody(err: ProxyError, html: boolean): { type: string; body: string } {
  if (!html) {
    return {
      type: 'application/json; charset=utf-8',
      body: JSON.stringify({ success: false, error: { code: err.code, message: err.message, ...(err.hint ? { details: { hint: err.hint } } : {}) } }) + '\n',
    };
  }
  const title = `${err.status} ${STATUS_CODES[err.status] ?? 'Error'}`;
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${escapeHtml(title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}h1{font-size:1.4em}code{background:#f3f3f3;padding:0 .2em}.c{color:#777;font-size:.85em}</style></head>
<body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(err.message)}</p>${err.hint ? `<p>${escapeHtml(err.hint)}</p>` : ''}<p class="c">Portico web proxy &middot; ${err.code}</p></body></html>
`;
  return { type: 'text/html; charset=utf-8', body };
}

/** Answers a request with an error page (the connection stays usable). */
export function sendError(req: IncomingMessage, res: ServerResponse, err: ProxyError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const { type, body } = errorBody(err, wantsHtml(req.headers.accept));
  // An explicit reason: one node refused earlier (writeHead throws after storing it) must not be reused.
  res.writeHead(err.status, STATUS_CODES[err.status] ?? 'Error', { ...err.headers, 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', 'x-portico-error': err.code });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** A complete raw HTTP/1.1 error response, for sockets taken over by an upgrade. */
export function rawErrorResponse(accept: string | undefined, err: ProxyError): string {
  const { type, body } = errorBody(err, wantsHtml(accept));
  let extra = '';
  for (const [k, v] of Object.entries(err.headers ?? {})) extra += `${k}: ${v}\r\n`;
  return (
    `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? 'Error'}\r\n${extra}` +
    `Content-Type: ${type}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\nX-Portico-Error: ${err.code}\r\nConnection: close\r\n\r\n${body}`
  );
}
