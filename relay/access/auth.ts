/**
 * Who is calling an HTTPS endpoint: credentials from the request and their
 * verification against the owner's users (relay/store users section).
 *
 *   Authorization: Bearer puk_…   a user API key (sha256 lookup, constant-time check)
 *   Authorization: Basic …        username:password (scrypt, relay/access/passwords.ts)
 *   Cookie: __Host-portico-session=…   a browser session (relay/access/sessions.ts)
 *
 * Verified keys and passwords are cached for a minute (by a sha256 of the
 * credential, never the credential itself) so a client sending Basic on every
 * request costs one scrypt per minute, not per request; the cache is bounded
 * and cleared when a user is deleted. At most `maxPendingHashes` scrypt runs
 * wait at once (32 MiB each); beyond that callers are told to back off.
 * Credentials and cookie values are never logged.
 */
import { createHash } from 'node:crypto';
import { verifySecret } from '../auth/tokens.js';
import type { UserKeyRecord, UserRecord } from '../store/store.js';
import { verifyPassword, PASSWORD_MAX_BYTES } from './passwords.js';

/** Host-only, Secure, Path=/ by the __Host- prefix rules. */
export const SESSION_COOKIE = '__Host-portico-session';
/** User API keys: `puk_` + 32 base32 chars (160 bits). */
export const USER_KEY_PREFIX = 'puk_';
const MAX_CREDENTIAL_LENGTH = 2048;

/** A management API key presented at an endpoint: the admin key, or an owner-scoped key. */
export type ManagementKey = { admin: true } | { admin: false; owner: string };

export interface UserDirectory {
  findUser(owner: string, username: string): Promise<UserRecord | undefined>;
  findUserKeyByHash(keyHash: string): Promise<{ key: UserKeyRecord; user: UserRecord } | undefined>;
  /**
   * Resolves a management API key (admin or owner-scoped), when the relay
   * lets those sign in at endpoints: whoever holds one can already change the
   * endpoint's access control through the API, so it grants nothing more.
   */
  findManagementKey?(key: string): Promise<ManagementKey | null>;
}

export type Credential = { kind: 'bearer'; key: string } | { kind: 'basic'; username: string; password: string };

export interface Identity {
  userId: string;
  username: string;
  owner: string;
  via: 'key' | 'basic' | 'session';
  /** Signed in with the relay's admin key: passes any allowed_users list. */
  admin?: boolean;
  /** Signed in with a management API key (admin or owner): never cached, so a deleted key stops at once. */
  managementKey?: boolean;
}

/** The credential of an Authorization header, or null (absent or unusable). */
export function parseAuthorization(header: string | undefined): Credential | null {
  if (typeof header !== 'string' || header.length > MAX_CREDENTIAL_LENGTH) return null;
  const sp = header.indexOf(' ');
  if (sp < 0) return null;
  const scheme = header.slice(0, sp).toLowerCase();
  const value = header.slice(sp + 1).trim();
  if (scheme === 'bearer') return value && !/\s/.test(value) ? { kind: 'bearer', key: value } : null;
  if (scheme === 'basic') {
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return null;
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) return null;
    return { kind: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  return null;
}

/** The value of the session cookie in a Cookie header, or undefined. */
export function sessionCookie(cookieHeader: string | undefined): string | undefined {
  if (!cookieHeader || !cookieHeader.includes(SESSION_COOKIE)) return undefined;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The Cookie header without the session cookie; null when nothing else is left. */
export function withoutSessionCookie(cookieHeader: string): string | null {
  if (!cookieHeader.includes(SESSION_COOKIE)) return cookieHeader;
  const rest = cookieHeader
    .split(';')
    .filter((part) => {
      const eq = part.indexOf('=');
      return part.trim() !== '' && (eq < 0 ? part.trim() : part.slice(0, eq).trim()) !== SESSION_COOKIE;
    })
    .map((p) => p.trim());
  return rest.length > 0 ? rest.join('; ') : null;
}

/** Usernames: 1-64 of letters, digits and . _ - @ (safe in headers, logs and HTML). */
export const USERNAME_RE = /^[A-Za-z0-9._@-]{1,64}$/;

export type VerifyResult = Identity | 'invalid' | 'busy';

interface CacheEntry {
  identity: Identity;
  expires: number;
}

export interface AuthenticatorOptions {
  cacheTtlMs?: number;
  cacheMax?: number;
  maxPendingHashes?: number;
  now?: () => number;
}

export class Authenticator {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly ttl: number;
  private readonly max: number;
  private readonly maxPending: number;
  private readonly now: () => number;
  private pending = 0;
  /** Password verifications (scrypt runs) so far; tests read it to see the cache work. */
  hashes = 0;

  constructor(
    private readonly users: UserDirectory,
    opts: AuthenticatorOptions = {},
  ) {
    this.ttl = opts.cacheTtlMs ?? 60_000;
    this.max = opts.cacheMax ?? 10_000;
    this.maxPending = opts.maxPendingHashes ?? 32;
    this.now = opts.now ?? Date.now;
  }

  /** Verifies a credential for an endpoint of `owner`'s server. */
  async verify(cred: Credential, owner: string): Promise<VerifyResult> {
    const cacheKey = cacheKeyOf(cred, owner);
    const now = this.now();
    const hit = this.cache.get(cacheKey);
    if (hit !== undefined) {
      if (hit.expires > now) return hit.identity;
      this.cache.delete(cacheKey);
    }
    let identity: Identity | null;
    if (cred.kind === 'bearer') identity = await this.verifyKey(cred.key, owner);
    else {
      if (this.pending >= this.maxPending) return 'busy';
      this.pending++;
      try {
        identity = await this.verifyBasic(cred.username, cred.password, owner);
      } finally {
        this.pending--;
      }
    }
    if (identity === null) return 'invalid';
    if (identity.managementKey === true) return identity;
    if (this.cache.size >= this.max) {
      for (const [k, e] of this.cache) if (e.expires <= now) this.cache.delete(k);
      if (this.cache.size >= this.max) this.cache.delete(this.cache.keys().next().value!);
    }
    this.cache.set(cacheKey, { identity, expires: now + this.ttl });
    return identity;
  }

  /** Forgets every cached verification (a user was deleted). */
  invalidate(): void {
    this.cache.clear();
  }

  private async verifyKey(key: string, owner: string): Promise<Identity | null> {
    if (key.length > 512) return null;
    if (!key.startsWith(USER_KEY_PREFIX)) {
      // A management API key: the admin key (any endpoint), or a key of the endpoint's own owner (as user `owner`).
      const m = await this.users.findManagementKey?.(key);
      if (!m) return null;
      // Names with a ':' (never in a username): the app, allowed_users and the access log cannot confuse
      // them with a user of that name.
      if (m.admin) return { userId: 'key:admin', username: 'key:admin', owner, via: 'key', admin: true, managementKey: true };
      return m.owner === owner ? { userId: `key:${owner}`, username: `key:${owner}`, owner, via: 'key', managementKey: true } : null;
    }
    if (key.length > 128) return null;
    const hash = createHash('sha256').update(key, 'utf8').digest('hex');
    const found = await this.users.findUserKeyByHash(hash);
    if (!found || !verifySecret(key, found.key.keyHash)) return null;
    if (found.user.owner !== owner) return null;
    return { userId: found.user.id, username: found.user.username, owner, via: 'key' };
  }

  private async verifyBasic(username: string, password: string, owner: string): Promise<Identity | null> {
    const valid = USERNAME_RE.test(username) && Buffer.byteLength(password, 'utf8') <= PASSWORD_MAX_BYTES;
    const user = valid ? await this.users.findUser(owner, username) : undefined;
    this.hashes++;
    // Unknown users and users without a password still cost one scrypt run.
    const ok = await verifyPassword(password, user?.passwordHash);
    if (!ok || !user) return null;
    return { userId: user.id, username: user.username, owner, via: 'basic' };
  }
}

function cacheKeyOf(cred: Credential, owner: string): string {
  const h = createHash('sha256');
  if (cred.kind === 'bearer') h.update(`k\0${cred.key}`);
  else h.update(`b\0${owner}\0${cred.username.toLowerCase()}\0${cred.password}`);
  return cred.kind === 'bearer' ? `k${owner}\0${h.digest('base64')}` : h.digest('base64');
}
