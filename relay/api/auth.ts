/**
 * Bearer-key authentication of the management API. The admin key is checked
 * against its hash; other keys are looked up by sha256 in the store. Every
 * failure answers the same 401 so callers learn nothing about why.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { PorticoError } from '../../shared/errors.js';
import { hashSecret, verifySecret } from '../auth/tokens.js';
import type { Store } from '../store/store.js';
import type { Principal } from './types.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the auth hook on every authenticated route. */
    principal: Principal;
  }
}

/** Longest key we bother hashing; real keys are 36 chars. */
const MAX_KEY_LENGTH = 512;

/**
 * The key from an `Authorization: Bearer <key>` header — or a bare
 * `Authorization: <key>`, the form the seed API's reference shows — or undefined.
 */
export function bearerKey(header: string | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const m = /^(?:Bearer[ \t]+)?(\S+)[ \t]*$/i.exec(header.trim());
  if (!m || m[1]!.length > MAX_KEY_LENGTH) return undefined;
  return m[1];
}

/** Resolves a presented key to a principal, or null. */
export async function authenticateKey(key: string, adminKeyHash: string, store: Store): Promise<Principal | null> {
  if (verifySecret(key, adminKeyHash)) return { kind: 'admin', keyId: null };
  const record = await store.findApiKeyByHash(hashSecret(key));
  if (!record || !verifySecret(key, record.keyHash)) return null;
  return record.owner === null ? { kind: 'admin', keyId: record.id } : { kind: 'owner', owner: record.owner, keyId: record.id };
}

/** An onRequest hook that authenticates the caller or answers 401. */
export function authHook(adminKeyHash: string, store: Store) {
  return async function authenticate(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
    const key = bearerKey(request.headers.authorization);
    const principal = key === undefined ? null : await authenticateKey(key, adminKeyHash, store);
    if (!principal) throw new PorticoError('UNAUTHORIZED', 'missing or invalid API key');
    request.principal = principal;
  };
}

/** Throws unless the caller holds an admin key. */
export function requireAdmin(request: FastifyRequest): void {
  if (request.principal.kind !== 'admin') throw new PorticoError('UNAUTHORIZED', 'this call needs the admin API key');
}
