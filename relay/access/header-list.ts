/**
 * Small edits on node's raw header arrays ([name, value, name, value, …]) as
 * the web proxy forwards them; names compare case-insensitively.
 */

/** The first value of `name`, or undefined. */
export function getHeader(raw: readonly string[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === name.length && raw[i]!.toLowerCase() === name) return raw[i + 1];
  return undefined;
}

/** Removes every `name` header (lowercase name); returns how many. */
export function removeHeader(raw: string[], name: string): number {
  let w = 0;
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === name.length && raw[i]!.toLowerCase() === name) {
      n++;
      continue;
    }
    raw[w++] = raw[i]!;
    raw[w++] = raw[i + 1]!;
  }
  raw.length = w;
  return n;
}

/** Removes every header whose lowercase name starts with `prefix`. */
export function removeHeaderPrefix(raw: string[], prefix: string): void {
  let w = 0;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase().startsWith(prefix)) continue;
    raw[w++] = raw[i]!;
    raw[w++] = raw[i + 1]!;
  }
  raw.length = w;
}

/** Replaces every `name` header with one `Name: value`. */
export function setHeader(raw: string[], name: string, value: string, display = name): void {
  removeHeader(raw, name);
  raw.push(display, value);
}

/** Adds `token` to Vary unless it (or `*`) is already there. */
export function addVary(raw: string[], token: string): void {
  const lower = token.toLowerCase();
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== 'vary') continue;
    const tokens = raw[i + 1]!.split(',').map((t) => t.trim().toLowerCase());
    if (tokens.includes(lower) || tokens.includes('*')) return;
    raw[i + 1] = `${raw[i + 1]!}, ${token}`;
    return;
  }
  raw.push('Vary', token);
}
