/**
 * Password hashing for endpoint users: scrypt (memory-hard) with N = 2^15,
 * r = 8, p = 1 (32 MiB, tens of ms per hash), a 16-byte random salt and a
 * 32-byte key, stored self-describing so the cost can be raised later without
 * breaking old hashes:
 *
 *   scrypt$ln=15,r=8,p=1$<salt base64>$<hash base64>
 *
 * Verification re-derives with the stored parameters (bounded, so a tampered
 * record cannot make the relay allocate gigabytes) and compares in constant time.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

export const PASSWORD_PARAMS = { ln: 15, r: 8, p: 1, saltBytes: 16, keyBytes: 32 } as const;
/** Longest password accepted (bytes); longer ones cost the same to hash but bound request work. */
export const PASSWORD_MAX_BYTES = 1024;
/** Upper bounds accepted when reading stored hashes. */
const MAX_LN = 20;
const MAX_R = 16;
const MAX_P = 4;

function derive(password: string, salt: Buffer, ln: number, r: number, p: number, keylen: number): Promise<Buffer> {
  const N = 2 ** ln;
  // Node's default maxmem (32 MiB) is exactly 128*N*r for N=2^15, r=8; leave room.
  const opts: ScryptOptions = { N, r, p, maxmem: 128 * N * r * p + 16 * 1024 * 1024 };
  return new Promise((resolve, reject) => scrypt(password.normalize('NFC'), salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

/** The stored form of a new password. */
export async function hashPassword(password: string): Promise<string> {
  const { ln, r, p, saltBytes, keyBytes } = PASSWORD_PARAMS;
  const salt = randomBytes(saltBytes);
  const key = await derive(password, salt, ln, r, p, keyBytes);
  return `scrypt$ln=${ln},r=${r},p=${p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

interface Parsed {
  ln: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

export function parsePasswordHash(stored: string): Parsed | null {
  const m = /^scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/.exec(stored);
  if (!m) return null;
  const ln = Number(m[1]);
  const r = Number(m[2]);
  const p = Number(m[3]);
  if (ln < 10 || ln > MAX_LN || r < 1 || r > MAX_R || p < 1 || p > MAX_P) return null;
  const salt = Buffer.from(m[4]!, 'base64');
  const key = Buffer.from(m[5]!, 'base64');
  if (salt.length < 8 || key.length < 16 || key.length > 64) return null;
  return { ln, r, p, salt, key };
}

/** A hash that never matches, verified when the user does not exist so timing does not tell. */
let dummy: Parsed | null = null;
function dummyHash(): Parsed {
  dummy ??= { ln: PASSWORD_PARAMS.ln, r: PASSWORD_PARAMS.r, p: PASSWORD_PARAMS.p, salt: randomBytes(16), key: randomBytes(32) };
  return dummy;
}

/**
 * True when `password` matches `stored`. `stored` null/undefined/unparseable
 * (no password set, unknown user) still costs one derivation and is false.
 */
export async function verifyPassword(password: string, stored: string | null | undefined): Promise<boolean> {
  const parsed = stored ? parsePasswordHash(stored) : null;
  const h = parsed ?? dummyHash();
  if (Buffer.byteLength(password, 'utf8') > PASSWORD_MAX_BYTES) return false;
  const key = await derive(password, h.salt, h.ln, h.r, h.p, h.key.length);
  return timingSafeEqual(key, h.key) && parsed !== null;
}
