/**
 * The relay's admin API key: taken from PORTICO_ADMIN_KEY, else read from
 * `<dataDir>/admin.key`, else created there (mode 0600) on first start.
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PorticoError } from '../../shared/errors.js';
import { hashSecret, randomBase32 } from '../auth/tokens.js';

export const ADMIN_KEY_FILE = 'admin.key';

export interface AdminKey {
  /** The key itself; returned so the caller may print where to find it (never log it). */
  key?: string;
  /** sha256 hex of the key. */
  hash: string;
  source: 'env' | 'file' | 'created';
}

/** A new random API key: `pak_` + 32 base32 chars (160 bits). */
export function makeApiKey(): string {
  return `pak_${randomBase32(32)}`;
}

/** Resolves the admin key; creates `<dataDir>/admin.key` (0600, dir 0700) when neither env nor file has one. */
export async function loadOrCreateAdminKey(dataDir: string, env: NodeJS.ProcessEnv = process.env): Promise<AdminKey> {
  const fromEnv = env.PORTICO_ADMIN_KEY?.trim();
  if (fromEnv) return { key: fromEnv, hash: hashSecret(fromEnv), source: 'env' };

  const file = join(dataDir, ADMIN_KEY_FILE);
  let existing: string | undefined;
  try {
    existing = (await readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (existing !== undefined) {
    if (existing === '') throw new PorticoError('CONFIG_INVALID', `${file} is empty; delete it to have a new admin key created`);
    return { key: existing, hash: hashSecret(existing), source: 'file' };
  }

  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const key = makeApiKey();
  // 'wx' never clobbers a key another process wrote meanwhile.
  try {
    await writeFile(file, key + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateAdminKey(dataDir, { ...env, PORTICO_ADMIN_KEY: '' });
    throw err;
  }
  await chmod(file, 0o600); // umask cannot widen it, but be explicit
  return { key, hash: hashSecret(key), source: 'created' };
}
