/**
 * Semantic checks of the access-control fields that JSON schema cannot make
 * (called by relay/mappings/validate.ts checkAccessControl, for mapping and
 * server documents): values that end up in response headers are header-safe,
 * CORS origins are origins, allowed_users are possible usernames.
 */
import { PorticoError } from '../../shared/errors.js';
import { USERNAME_RE } from './auth.js';

const HEADER_TEXT = /^[\x20-\x7e]*$/;
const ORIGIN_RE = /^https?:\/\/(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)(:\d{1,5})?$/i;
const TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function fail(field: string, message: string): never {
  throw new PorticoError('VALIDATION_FAILED', `${field} ${message}`, { field });
}

/** Throws VALIDATION_FAILED naming the field; `prefix` is '' for a whole request body. */
export function checkAccessExtras(doc: Record<string, unknown>, prefix: string): void {
  const f = (k: string) => (prefix ? `${prefix}.${k}` : k);
  const sh = doc.security_headers as Record<string, unknown> | undefined;
  if (sh && typeof sh.content_security_policy === 'string' && !HEADER_TEXT.test(sh.content_security_policy)) {
    fail(f('security_headers.content_security_policy'), 'must be printable ASCII on one line');
  }
  const cors = doc.cors as Record<string, unknown> | undefined;
  if (cors && Array.isArray(cors.allowed_origins)) {
    cors.allowed_origins.forEach((o, i) => {
      if (o !== '*' && (typeof o !== 'string' || !ORIGIN_RE.test(o.replace(/\/$/, '')))) fail(f(`cors.allowed_origins.${i}`), 'must be "*" or an origin such as https://app.example.com');
    });
  }
  if (cors && Array.isArray(cors.allowed_headers)) {
    cors.allowed_headers.forEach((h, i) => {
      if (h !== '*' && (typeof h !== 'string' || !TOKEN_RE.test(h))) fail(f(`cors.allowed_headers.${i}`), 'must be "*" or a header name');
    });
  }
  if (Array.isArray(doc.allowed_users)) {
    doc.allowed_users.forEach((u, i) => {
      if (typeof u !== 'string' || !USERNAME_RE.test(u)) fail(f(`allowed_users.${i}`), 'must be a username (1-64 letters, digits, . _ - @)');
    });
  }
}
