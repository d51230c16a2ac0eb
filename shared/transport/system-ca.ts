/**
 * The trust the agent verifies the relay against when no `--ca` is given:
 * Node's bundled root certificates, the operating system's store (a CA
 * installed with update-ca-certificates or the like, which Node alone reads
 * only when started with --use-openssl-ca) and NODE_EXTRA_CA_CERTS (which an
 * explicit CA list would otherwise drop). SSL_CERT_FILE, when set, names the
 * system bundle (OpenSSL's convention); SSL_CERT_DIR is not read.
 */
import { readFileSync, statSync } from 'node:fs';
import tls from 'node:tls';

/** Where distributions keep the system bundle (Debian/Ubuntu, RHEL/Fedora, Alpine/macOS/BSD, SUSE). */
const SYSTEM_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/cert.pem', '/etc/ssl/ca-bundle.pem'];
/** A CA bundle larger than this is not one (a device, a wrong path): skipped. */
const MAX_BUNDLE_BYTES = 16 * 1024 * 1024;

let cached: string[] | null = null;

/** Node's roots, the first system bundle found and NODE_EXTRA_CA_CERTS (read once per process). */
export function systemTrust(env: NodeJS.ProcessEnv = process.env): string[] {
  if (cached !== null && env === process.env) return cached;
  const paths = env.SSL_CERT_FILE ? [env.SSL_CERT_FILE] : SYSTEM_BUNDLES;
  let system: string[] = [];
  for (const p of paths) {
    system = readPemFile(p);
    if (system.length > 0) break;
  }
  const extra = env.NODE_EXTRA_CA_CERTS ? readPemFile(env.NODE_EXTRA_CA_CERTS) : [];
  const all = [...tls.rootCertificates, ...system, ...extra];
  if (env === process.env) cached = all;
  return all;
}

/** The certificates in a regular file of at most MAX_BUNDLE_BYTES; none if it is missing, not a file or too big. */
function readPemFile(path: string): string[] {
  try {
    const st = statSync(path);
    if (!st.isFile() || st.size > MAX_BUNDLE_BYTES) return [];
    return readFileSync(path, 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  } catch {
    return [];
  }
}
