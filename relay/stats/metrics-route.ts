/**
 * GET /metrics on the API listener, Prometheus text format. Scrapers present
 * `Authorization: Bearer <key>` with either the read-only metrics key
 * (PORTICO_METRICS_KEY, else `<data_dir>/metrics.key`, created 0600 on first
 * start) or the admin key; no key or another key answers 401. The metrics key
 * opens nothing else, so it is the one to give to Prometheus
 * (`authorization: { credentials_file: … }` in the scrape config).
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { PorticoError } from '../../shared/errors.js';
import { hashSecret, randomBase32, verifySecret } from '../auth/tokens.js';
import { bearerKey } from '../api/auth.js';
import { METRICS_CONTENT_TYPE, scrape } from '../metrics.js';

export const METRICS_KEY_FILE = 'metrics.key';
export const METRICS_PATH = '/metrics';

/** sha256 hex of the metrics key (env PORTICO_METRICS_KEY, else the file, else a new one written there). */
export async function loadOrCreateMetricsKeyHash(dataDir: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const fromEnv = env.PORTICO_METRICS_KEY?.trim();
  if (fromEnv) return hashSecret(fromEnv);
  const file = join(dataDir, METRICS_KEY_FILE);
  try {
    const existing = (await readFile(file, 'utf8')).trim();
    if (existing) return hashSecret(existing);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const key = `pmk_${randomBase32(32)}`;
  try {
    await writeFile(file, key + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return hashSecret((await readFile(file, 'utf8')).trim());
    throw err;
  }
  await chmod(file, 0o600);
  return hashSecret(key);
}

export function registerMetricsRoute(app: FastifyInstance, keyHashes: { admin: string; metrics: string }): void {
  app.get(METRICS_PATH, { schema: { hide: true }, logLevel: 'warn' }, async (request, reply) => {
    const key = bearerKey(request.headers.authorization);
    // Both compared every time (constant time each), so timing does not tell which key was close.
    const okAdmin = key !== undefined && verifySecret(key, keyHashes.admin);
    const okMetrics = key !== undefined && verifySecret(key, keyHashes.metrics);
    if (!okAdmin && !okMetrics) throw new PorticoError('UNAUTHORIZED', 'GET /metrics needs Authorization: Bearer <metrics key or admin key>');
    reply.header('content-type', METRICS_CONTENT_TYPE);
    reply.header('cache-control', 'no-store');
    return scrape();
  });
}
