/**
 * --dev certificates: a local CA (<data-dir>/ca.pem) and one leaf signed by
 * it for the tunnel listener and the HTTPS proxy, covering localhost,
 * *.localhost, *.secure.localhost, the public hostname and 127.0.0.1/::1.
 * Made once and reused, so agents can pin ca.pem across restarts.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { generate } from 'selfsigned';

export interface DevCerts {
  caPath: string;
  ca: string;
  cert: string;
  key: string;
}

const YEAR_MS = 365 * 24 * 3600 * 1000;

function leafNames(domain: string, publicHostname: string): string[] {
  const names = new Set(['localhost', '*.localhost', `*.secure.localhost`, domain, `*.${domain}`, `*.secure.${domain}`, publicHostname]);
  return [...names];
}

function stillGood(certPem: string, names: string[]): boolean {
  try {
    const x = new X509Certificate(certPem);
    if (Date.parse(x.validTo) - Date.now() < 30 * 24 * 3600 * 1000) return false;
    const san = x.subjectAltName ?? '';
    return names.every((n) => san.includes(`DNS:${n}`));
  } catch {
    return false;
  }
}

export async function ensureDevCerts(dataDir: string, domain: string, publicHostname: string): Promise<DevCerts> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const caPath = join(dataDir, 'ca.pem');
  const caKeyPath = join(dataDir, 'ca.key');
  const certPath = join(dataDir, 'relay.crt');
  const keyPath = join(dataDir, 'relay.key');
  const now = new Date();
  let ca: string;
  let caKey: string;
  if (existsSync(caPath) && existsSync(caKeyPath)) {
    ca = readFileSync(caPath, 'utf8');
    caKey = readFileSync(caKeyPath, 'utf8');
  } else {
    const res = await generate([{ name: 'commonName', value: 'Portico dev CA' }, { name: 'organizationName', value: 'Portico (dev)' }], {
      keyType: 'ec',
      curve: 'P-256',
      algorithm: 'sha256',
      notBeforeDate: new Date(now.getTime() - 3600_000),
      notAfterDate: new Date(now.getTime() + 10 * YEAR_MS),
      extensions: [
        { name: 'basicConstraints', cA: true, critical: true },
        { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
      ],
    });
    ca = res.cert;
    caKey = res.private;
    writeFileSync(caKeyPath, caKey, { mode: 0o600 });
    writeFileSync(caPath, ca, { mode: 0o644 });
  }
  const names = leafNames(domain, publicHostname);
  if (existsSync(certPath) && existsSync(keyPath)) {
    const cert = readFileSync(certPath, 'utf8');
    if (stillGood(cert, names)) return { caPath, ca, cert, key: readFileSync(keyPath, 'utf8') };
  }
  const leaf = await generate([{ name: 'commonName', value: publicHostname }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(now.getTime() - 3600_000),
    notAfterDate: new Date(now.getTime() + 2 * YEAR_MS),
    ca: { key: caKey, cert: ca },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [...names.map((value) => ({ type: 2 as const, value })), { type: 7 as const, ip: '127.0.0.1' }, { type: 7 as const, ip: '::1' }],
      },
    ],
  });
  writeFileSync(keyPath, leaf.private, { mode: 0o600 });
  writeFileSync(certPath, leaf.cert, { mode: 0o644 });
  return { caPath, ca, cert: leaf.cert, key: leaf.private };
}
