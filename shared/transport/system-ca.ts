/**
 * The trust the agent verifies the relay against when no `--ca` is given:
 * Node's bundled root certificates plus the operating system's store (a CA
 * installed with update-ca-certificates or the like), which Node alone does
 * not read unless started with --use-openssl-ca. SSL_CERT_FILE, when set,
 * names the system bundle (OpenSSL's convention).
 */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';

/** Where distributions keep the system bundle (Debian/Ubuntu, RHEL/Fedora, Alpine/macOS/BSD, SUSE). */
const SYSTEM_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/cert.pem', '/etc/ssl/ca-bundle.pem'];

let cached: string[] | null = null;

/** Node's roots plus the first system bundle found (read once); Node's roots alone if none is. */
export function systemTrust(env: NodeJS.ProcessEnv = process.env): string[] {
  if (cached !== null && env === process.env) return cached;
  const paths = env.SSL_CERT_FILE ? [env.SSL_CERT_FILE] : SYSTEM_BUNDLES;
  let system: string[] = [];
  for (const p of paths) {
    try {
      system = splitPem(readFileSync(p, 'utf8'));
      if (system.length > 0) break;
    } catch {
      // not on this system
    }
  }
  const all = [...tls.rootCertificates, ...system];
  if (env === process.env) cached = all;
  return all;
}

function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}
