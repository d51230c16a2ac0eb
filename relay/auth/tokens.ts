/**
 * Agent tokens: `ptk_<serverId>_<secret>`. The server id lets the relay find
 * the record in one lookup; only sha256(secret) is ever stored, and secrets are
 * compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

const BASE32_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
const SERVER_ID_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** 32 base32 chars = 160 bits of entropy. */
const SECRET_CHARS = 32;
const SECRET_RE = /^[a-z2-7]{32}$/;
const TOKEN_PREFIX = 'ptk_';

/** Lowercase RFC 4648 base32 without padding. */
export function base32Encode(bytes: Uint8Array): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += BASE32_ALPHABET[(acc >>> bits) & 31];
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32_ALPHABET[(acc << (5 - bits)) & 31];
  return out;
}

/** `chars` random lowercase base32 characters (5 bits each) from crypto.randomBytes. */
export function randomBase32(chars: number): string {
  return base32Encode(randomBytes(Math.ceil((chars * 5) / 8))).slice(0, chars);
}

/** sha256 hex of a secret (agent token secret or API key). */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Constant-time check of `secret` against a stored sha256 hex hash. */
export function verifySecret(secret: string, hash: string): boolean {
  const actual = createHash('sha256').update(secret, 'utf8').digest();
  const expected = Buffer.from(hash, 'hex');
  // A malformed stored hash still costs one comparison so timing stays flat.
  if (expected.length !== actual.length) {
    timingSafeEqual(actual, actual);
    return false;
  }
  return timingSafeEqual(actual, expected);
}

/** A fresh agent token for `serverId`, and the hash to store. */
export function makeAgentToken(serverId: string): { token: string; secret: string; tokenHash: string } {
  if (!SERVER_ID_RE.test(serverId)) throw new TypeError(`invalid server id ${JSON.stringify(serverId)}`);
  const secret = randomBase32(SECRET_CHARS);
  return { token: `${TOKEN_PREFIX}${serverId}_${secret}`, secret, tokenHash: hashSecret(secret) };
}

/** Splits a token into server id and secret; null when it is not a well-formed agent token. */
export function parseAgentToken(token: string): { serverId: string; secret: string } | null {
  if (typeof token !== 'string' || !token.startsWith(TOKEN_PREFIX)) return null;
  const sep = token.lastIndexOf('_');
  if (sep <= TOKEN_PREFIX.length) return null;
  const serverId = token.slice(TOKEN_PREFIX.length, sep);
  const secret = token.slice(sep + 1);
  if (!SERVER_ID_RE.test(serverId) || !SECRET_RE.test(secret)) return null;
  return { serverId, secret };
}
