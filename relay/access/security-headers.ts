/**
 * Security response headers from the server's `security_headers` document:
 * `hsts_enabled` -> Strict-Transport-Security (one year; no includeSubDomains,
 * since each endpoint is its own host), `content_security_policy` ->
 * Content-Security-Policy, `x_frame_options` -> X-Frame-Options. Only what is
 * configured is sent, and it replaces what the app sent under the same name.
 * Compiled once per route; values that are not valid header text are dropped.
 */
import { setHeader } from './header-list.js';

export const HSTS_VALUE = 'max-age=31536000';

/** [lowercase name, display name, value] triples, or null when nothing is configured. */
export type SecurityHeaders = Array<[string, string, string]>;

/** Visible ASCII and spaces only: no CR/LF (response splitting), no control bytes. */
const HEADER_TEXT = /^[\x20-\x7e]*$/;

export function compileSecurityHeaders(doc: unknown, onBad?: (field: string) => void): SecurityHeaders | null {
  if (!doc || typeof doc !== 'object') return null;
  const d = doc as { hsts_enabled?: unknown; content_security_policy?: unknown; x_frame_options?: unknown };
  const out: SecurityHeaders = [];
  if (d.hsts_enabled === true) out.push(['strict-transport-security', 'Strict-Transport-Security', HSTS_VALUE]);
  if (typeof d.content_security_policy === 'string' && d.content_security_policy.trim() !== '') {
    const v = d.content_security_policy.trim();
    if (HEADER_TEXT.test(v)) out.push(['content-security-policy', 'Content-Security-Policy', v]);
    else onBad?.('content_security_policy');
  }
  if (typeof d.x_frame_options === 'string' && d.x_frame_options !== '') {
    const v = d.x_frame_options.toUpperCase();
    if (v === 'DENY' || v === 'SAMEORIGIN') out.push(['x-frame-options', 'X-Frame-Options', v]);
    else onBad?.('x_frame_options');
  }
  return out.length > 0 ? out : null;
}

/** Applies the configured headers to a raw response header array. */
export function applySecurityHeaders(raw: string[], headers: SecurityHeaders): void {
  for (const [lower, display, value] of headers) setHeader(raw, lower, value, display);
}
