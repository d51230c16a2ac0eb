/**
 * The sign-in page browsers get instead of a bare 401 on endpoints that need
 * a login: a self-contained HTML form posting to `/.portico/login` on the same
 * host. Served with a strict CSP (no scripts), X-Frame-Options: DENY (no
 * clickjacking of the form) and no caching.
 */

export const PORTAL_PREFIX = '/.portico/';
export const LOGIN_PATH = '/.portico/login';
export const LOGOUT_PATH = '/.portico/logout';

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export const LOGIN_PAGE_HEADERS: Record<string, string> = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
};

/** A relative path to return to after signing in; anything else (other hosts, schemes) becomes `/`. */
export function safeNext(next: string | null | undefined): string {
  if (typeof next !== 'string' || next.length === 0 || next.length > 2048) return '/';
  if (!next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\') || /[\u0000-\u001f\u007f]/.test(next)) return '/';
  if (next.startsWith(PORTAL_PREFIX)) return '/';
  return next;
}

export function loginPage(opts: { host: string; next: string; message?: string; username?: string }): string {
  const msg = opts.message ? `<p class="e" role="alert">${escapeHtml(opts.message)}</p>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>Sign in &middot; ${escapeHtml(opts.host)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:24em;margin:4em auto;padding:0 1em;color:#222}h1{font-size:1.3em}label{display:block;margin:.8em 0 .2em}input{width:100%;box-sizing:border-box;padding:.4em;font:inherit}button{margin-top:1.2em;padding:.5em 1.2em;font:inherit}.e{color:#b00020}.c{color:#777;font-size:.85em;margin-top:2em}</style></head>
<body><h1>Sign in to ${escapeHtml(opts.host)}</h1>${msg}
<form method="post" action="${LOGIN_PATH}">
<input type="hidden" name="next" value="${escapeHtml(opts.next)}">
<label for="u">Username</label><input id="u" name="username" autocomplete="username" required autofocus value="${escapeHtml(opts.username ?? '')}">
<label for="p">Password</label><input id="p" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
<p class="c">Portico web proxy &middot; API clients: send <code>Authorization: Bearer &lt;user API key&gt;</code> or Basic credentials instead.</p></body></html>
`;
}
