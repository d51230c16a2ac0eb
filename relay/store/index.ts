/**
 * Picks the Store implementation from `store.url`. Only SQLite is built in;
 * a postgres:// URL is refused at start with a clear message.
 */
import { mkdirSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';

import { PorticoError } from '../../shared/errors.js';
import { SqliteStore } from './sqlite.js';
import type { Store } from './store.js';

export type { Store } from './store.js';
export { SqliteStore } from './sqlite.js';

/**
 * Where a `sqlite:` URL points: `:memory:`, or an absolute file path
 * (`sqlite:portico.db` is relative to dataDir; `sqlite:/abs.db` and
 * `sqlite:///abs.db` are absolute).
 */
export function sqlitePathFromUrl(url: string, dataDir: string): string {
  let rest = url.slice('sqlite:'.length);
  if (rest === ':memory:' || rest === '//:memory:') return ':memory:';
  if (rest.startsWith('//')) rest = rest.slice(2);
  if (rest === '') throw new PorticoError('CONFIG_INVALID', `store.url: "${url}" names no database file; use e.g. "sqlite:portico.db"`, { key: 'store.url' });
  return isAbsolute(rest) ? rest : resolve(dataDir, rest);
}

/** Opens (creating and migrating if needed) the store named by `url`. */
export async function openStore(url: string, dataDir: string): Promise<Store> {
  if (url.startsWith('sqlite:')) {
    const path = sqlitePathFromUrl(url, dataDir);
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    try {
      return new SqliteStore(path);
    } catch (err) {
      if (err instanceof PorticoError) throw err;
      throw new PorticoError('CONFIG_INVALID', `store.url: cannot open SQLite database ${path}: ${(err as Error).message}`, { key: 'store.url', path }, { cause: err });
    }
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    throw new PorticoError('CONFIG_INVALID', 'store.url: postgres is not supported by this build yet; use "sqlite:portico.db" (the default)', {
      key: 'store.url',
    });
  }
  throw new PorticoError('CONFIG_INVALID', `store.url: unknown store "${url.replace(/\/\/[^@/]*@/, '//***@')}"; use "sqlite:portico.db"`, { key: 'store.url' });
}
