/**
 * What an access log may say about a request: the path with the values of
 * secret-looking query parameters replaced (token, key, password, auth,
 * session, signature, code …), the user agent cut to a sane length. Headers
 * (Authorization, Cookie) are never logged at all.
 */
const SECRET_PARAM = /(token|key|secret|pass(word|wd)?|auth|session|sig(nature)?|credential|code|jwt|bearer|cookie)/i;
const MAX_PATH = 512;
const MAX_UA = 256;

/** The request target with secret query values redacted, truncated to 512 characters. */
export function redactPath(url: string | undefined): string {
  if (!url) return '/';
  const q = url.indexOf('?');
  let out = url;
  if (q >= 0) {
    const parts = url.slice(q + 1).split('&');
    let changed = false;
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      const eq = p.indexOf('=');
      const name = eq < 0 ? p : p.slice(0, eq);
      let decoded = name;
      try {
        decoded = decodeURIComponent(name);
      } catch {
        /* keep raw */
      }
      if (eq >= 0 && SECRET_PARAM.test(decoded)) {
        parts[i] = `${name}=[redacted]`;
        changed = true;
      }
    }
    if (changed) out = `${url.slice(0, q)}?${parts.join('&')}`;
  }
  return out.length > MAX_PATH ? `${out.slice(0, MAX_PATH)}…` : out;
}

export function truncateUserAgent(ua: string | undefined): string | null {
  if (!ua) return null;
  return ua.length > MAX_UA ? ua.slice(0, MAX_UA) : ua;
}
