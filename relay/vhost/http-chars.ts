/**
 * Character classes of HTTP/1.1 (RFC 9110 §5.6.2, §5.5) as 256-entry
 * tables, shared by the request-head and response parsers.
 */

/** tchar: ! # $ % & ' * + - . ^ _ ` | ~ DIGIT ALPHA (field names, methods). */
export const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

/** Field-value characters: HTAB, SP, VCHAR, obs-text (never CR, LF or NUL). */
export const FIELD_VALUE = new Uint8Array(256);
FIELD_VALUE[0x09] = 1;
for (let c = 0x20; c <= 0x7e; c++) FIELD_VALUE[c] = 1;
for (let c = 0x80; c <= 0xff; c++) FIELD_VALUE[c] = 1;

/** A non-empty token (field name, method). */
export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (TCHAR[s.charCodeAt(i)] !== 1) return false;
  return true;
}

/** Characters a field value (or reason phrase) may hold: no CR, LF, NUL or other controls, nothing above 0xff. */
export function isFieldValue(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff || FIELD_VALUE[c] !== 1) return false;
  }
  return true;
}

/**
 * True when text holds `lower` (a lower-case constant) at `start`, in any
 * ASCII case: a header name or token compared in place, without a
 * lower-cased copy.
 */
export function matchesLower(text: string, start: number, lower: string): boolean {
  if (start + lower.length > text.length) return false;
  for (let i = 0; i < lower.length; i++) {
    const c = text.charCodeAt(start + i);
    if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** Header lines as the usual head has them: a token name, a colon, field-value characters, CRLF; then the blank line (sticky: set lastIndex). */
export const PLAIN_LINES = /(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\x00-\x08\x0a-\x1f\x7f]*\r\n)*\r\n$/y;
