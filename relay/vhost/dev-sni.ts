/**
 * --dev only: certificates for `{owner}-{name}.localhost` hosts. TLS clients
 * (OpenSSL, node, browsers) refuse a wildcard directly under a one-label name,
 * so the dev leaf's `*.localhost` does not cover them (`*.secure.localhost`
 * is fine). For every one-label host under such a domain an SNI callback
 * mints a leaf for the exact name, signed by the dev CA, and caches it — for
 * unknown names too, so `curl --cacert ca.pem https://nosuch.localhost:8443`
 * gets the relay's 404 rather than a certificate error.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { generate } from 'selfsigned';
import type { Logger } from '../../shared/logging.js';

const CACHE_MAX = 1000;
/** Certificates being minted at once, at most. */
const MAX_MINTING = 16;
/** A host name label (RFC 1123): what may stand before the dev domain. */
const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const YEAR_MS = 365 * 24 * 3600 * 1000;

export type SniCallback = (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => void;

export interface DevSniOptions {
  dataDir: string;
  domain: string;
  /** TLS options every context shares with the main one. */
  contextOptions: tls.SecureContextOptions;
  logger: Logger;
}

/** True when `*.<domain>` is not a usable wildcard (one-label domains such as localhost). */
export function needsDevSni(domain: string): boolean {
  return !domain.includes('.');
}

export function devSniCallback(opts: DevSniOptions): SniCallback {
  const suffix = `.${opts.domain}`;
  const cache = new Map<string, Promise<tls.SecureContext>>();
  let minting = 0;
  let ca: { key: string; cert: string } | null = null;
  const mint = async (host: string): Promise<tls.SecureContext> => {
    ca ??= { key: readFileSync(join(opts.dataDir, 'ca.key'), 'utf8'), cert: readFileSync(join(opts.dataDir, 'ca.pem'), 'utf8') };
    const now = Date.now();
    const leaf = await generate([{ name: 'commonName', value: host }], {
      keyType: 'ec',
      curve: 'P-256',
      algorithm: 'sha256',
      notBeforeDate: new Date(now - 3600_000),
      notAfterDate: new Date(now + YEAR_MS),
      ca,
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true },
        { name: 'subjectAltName', altNames: [{ type: 2 as const, value: host }] },
      ],
    });
    return tls.createSecureContext({ ...opts.contextOptions, cert: leaf.cert, key: leaf.private });
  };
  return (servername, cb) => {
    const host = servername.toLowerCase();
    const label = host.endsWith(suffix) ? host.slice(0, -suffix.length) : '';
    if (!DNS_LABEL.test(label)) return cb(null, undefined);
    let p = cache.get(host);
    if (p) {
      // Least recently used first out: a hit moves to the end.
      cache.delete(host);
      cache.set(host, p);
    } else {
      // Minting costs a key pair (~5 ms of CPU): a few at a time; past that, the wildcard
      // certificate answers (a client then sees a name mismatch, and may retry).
      if (minting >= MAX_MINTING) return cb(null, undefined);
      if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!);
      minting++;
      p = mint(host);
      cache.set(host, p);
      const minted = p;
      minted.then(
        () => minting--,
        () => {
          minting--;
          if (cache.get(host) === minted) cache.delete(host);
        },
      );
    }
    p.then(
      (ctx) => cb(null, ctx),
      (err: Error) => {
        opts.logger.warn({ host, err: err.message }, 'could not make a dev certificate; using the wildcard one');
        cb(null, undefined);
      },
    );
  };
}
