import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import t from 'tap';

import { loadRelayConfig } from '../../shared/config/relay-config.js';
import { PorticoError } from '../../shared/errors.js';

// Fixtures are read from the source tree; tests run from the repo root.
const root = process.cwd();
const fixtures = join(root, 'test/fixtures/config');

/** `# expect: key` and `# mode: production|dev` header lines (mode defaults to dev). */
function header(file: string): { expect?: string; dev: boolean } {
  const lines = readFileSync(file, 'utf8').split('\n').slice(0, 3);
  const expect = lines.map((l) => /^# expect: (.+)$/.exec(l)?.[1]?.trim()).find((x) => x !== undefined);
  const production = lines.some((l) => /^# mode: production\s*$/.test(l));
  return { ...(expect !== undefined ? { expect } : {}), dev: !production };
}

function catchErr(fn: () => unknown): PorticoError {
  try {
    fn();
  } catch (err) {
    if (err instanceof PorticoError) return err;
    throw err;
  }
  throw new Error('expected a PorticoError');
}

t.test('valid fixtures load', async (t) => {
  const dir = join(fixtures, 'valid');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  t.ok(files.length >= 5, 'has valid fixtures');
  for (const f of files) {
    const { dev } = header(join(dir, f));
    const cfg = loadRelayConfig({ configPath: join(dir, f), dev, cwd: root });
    t.ok(Object.isFrozen(cfg) && Object.isFrozen(cfg.ports.range), `${f} loads (dev=${dev}) and is frozen`);
  }
});

t.test('invalid fixtures fail naming the key', async (t) => {
  const dir = join(fixtures, 'invalid');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  t.ok(files.length >= 10, 'has invalid fixtures');
  for (const f of files) {
    const { expect, dev } = header(join(dir, f));
    t.ok(expect, `${f} has an "# expect:" first line`);
    const err = catchErr(() => loadRelayConfig({ configPath: `test/fixtures/config/invalid/${f}`, dev, cwd: root }));
    t.equal(err.code, 'CONFIG_INVALID', `${f}: CONFIG_INVALID`);
    t.ok(err.message.includes(expect!), `${f}: message names ${expect}: ${err.message}`);
    t.ok(err.message.includes(f), `${f}: message names the file`);
  }
});

t.test('the spec examples of messages', async (t) => {
  const err = catchErr(() => loadRelayConfig({ configPath: 'test/fixtures/config/invalid/unknown-key.yaml', dev: true, cwd: root }));
  t.match(err.message, /unknown config key "ports\.rnage" in test\/fixtures\/config\/invalid\/unknown-key\.yaml \(line 3\); did you mean "ports\.range"\?/);
  t.equal(err.details?.key, 'ports.rnage');
  const bad = catchErr(() => loadRelayConfig({ configPath: 'test/fixtures/config/invalid/bad-duration-no-unit.yaml', dev: true, cwd: root }));
  t.match(bad.message, /"https\.timeouts\.standard".*line 4.*60 has no unit/);
  const prod = catchErr(() => loadRelayConfig({ dev: false, cwd: root }));
  t.match(prod.message, /or use --dev/);
  t.match(prod.message, /tunnel\.cert/);
  t.match(prod.message, /https\.cert/);
  t.match(prod.message, /domain/);
  t.same(
    (prod.details?.errors as Array<{ key: string }>).map((e) => e.key),
    ['tunnel.cert', 'https.cert', 'domain'],
    'every problem is reported at once',
  );
});

t.test('--dev alone gives the SPEC dev defaults', async (t) => {
  const cfg = loadRelayConfig({ dev: true, cwd: '/work/x' });
  t.same(cfg, {
    dataDir: '/work/x/.portico',
    domain: 'localhost',
    publicHostname: 'connect01.localhost',
    dev: true,
    logLevel: 'info',
    tunnel: {
      listen: { host: '127.0.0.1', port: 7000 },
      streamWindow: 4 * 1024 * 1024,
      keepaliveInterval: 10_000,
      keepaliveTimeout: 30_000,
      handshakeTimeout: 10_000,
      maxPendingPerIp: 64,
      sealedData: true,
    },
    ports: { bind: '127.0.0.1', range: { start: 20000, end: 20999 }, perServer: 20, reserved: [22, 80, 443] },
    mappings: { maxPerServer: 40, reservedInternalPorts: [22, 5901, 6006, 6637, 7088, 8888] },
    servers: { maxPerOwner: 0 },
    https: {
      listen: { host: '127.0.0.1', port: 8443 },
      timeouts: { standard: 60_000, streaming: 600_000, download: 1_800_000 },
      hostHeader: 'keep',
      maxHeaderBytes: 32 * 1024,
      maxConnectionsPerIp: 256,
      headerTimeout: 8_000,
      fastFront: true,
    },
    http: { listen: { host: '127.0.0.1', port: 8880 } },
    api: { listen: { host: '127.0.0.1', port: 7400 } },
    store: { url: 'sqlite:portico.db' },
    udp: { flowIdleTimeout: 60_000, maxFlowsPerServer: 1024, queueDatagrams: 256, queueBytes: 256 * 1024 },
    shutdownGrace: 30_000,
  });
  t.notOk('cert' in cfg.tunnel, 'no tunnel cert in dev');
  t.ok(Object.isFrozen(cfg.tunnel.listen));
  t.throws(() => {
    (cfg.ports.reserved as number[]).push(1);
  }, TypeError);
});

t.test('keys in the file win over --dev; CLI flags win over the file', async (t) => {
  const cfg = loadRelayConfig({ configPath: 'test/fixtures/config/valid/dev-overrides.yaml', dev: true, cwd: root });
  t.equal(cfg.domain, 'dev.test');
  t.same(cfg.ports.range, { start: 21000, end: 21099 });
  t.equal(cfg.ports.perServer, 10);
  t.same(cfg.api.listen, { host: '127.0.0.1', port: 0 });
  t.equal(cfg.publicHostname, 'connect01.localhost', 'unset keys still get dev defaults');
  t.equal(cfg.dataDir, resolve(root, '.portico'), 'dev data_dir is relative to cwd');

  const over = loadRelayConfig({
    configPath: 'test/fixtures/config/valid/production-full.yaml',
    dev: false,
    dataDir: 'tmp/data',
    logLevel: 'debug',
    cwd: root,
  });
  t.equal(over.dataDir, resolve(root, 'tmp/data'));
  t.equal(over.logLevel, 'debug');
  const err = catchErr(() => loadRelayConfig({ dev: true, logLevel: 'loud', cwd: root }));
  t.match(err.message, /--log-level/);
  t.equal(err.details?.key, 'log_level');
});

t.test('a full production file: every value, paths relative to the file', async (t) => {
  const cfg = loadRelayConfig({ configPath: 'test/fixtures/config/valid/production-full.yaml', dev: false, cwd: root });
  const dir = join(fixtures, 'valid');
  t.equal(cfg.dev, false);
  t.equal(cfg.dataDir, '/srv/portico');
  t.equal(cfg.domain, 'gpu.example.com');
  t.equal(cfg.publicHostname, 'connect02.gpu.example.com');
  t.equal(cfg.logLevel, 'warn');
  t.equal(cfg.shutdownGrace, 5000);
  t.equal(cfg.tunnel.cert, '/etc/portico/tunnel.crt');
  t.equal(cfg.tunnel.streamWindow, 16 * 1024 * 1024);
  t.equal(cfg.tunnel.handshakeTimeout, 2500);
  t.equal(cfg.ports.perServer, 40);
  t.same(cfg.ports.reserved.slice(0, 4), [22, 80, 443, 30100]);
  t.equal(cfg.ports.reserved.length, 13);
  t.same(cfg.mappings, { maxPerServer: 10, reservedInternalPorts: [] });
  t.same(cfg.servers, { maxPerOwner: 3 }, 'servers.max_per_owner');
  t.equal(cfg.https.cert, join(dir, 'certs/wildcard.crt'));
  t.same(cfg.https.timeouts, { standard: 90_000, streaming: 3_600_000, download: 7_200_000 });
  t.equal(cfg.https.fastFront, false, 'the fast front can be turned off');
  t.same(cfg.api.listen, { host: '127.0.0.1', port: 7401 });
  t.equal(cfg.store.url, 'sqlite:/var/lib/portico/state.db');
  t.equal(cfg.udp.flowIdleTimeout, 120_000);

  const min = loadRelayConfig({ configPath: 'test/fixtures/config/valid/production-minimal.yaml', dev: false, cwd: root });
  t.equal(min.dataDir, '/var/lib/portico');
  t.equal(min.publicHostname, 'example.com', 'public_hostname defaults to domain');
  t.same(min.tunnel.listen, { host: '0.0.0.0', port: 7000 });
  t.same(min.ports.range, { start: 20000, end: 39999 });
  t.same(min.https.listen, { host: '0.0.0.0', port: 443 });
  t.equal(min.https.fastFront, true, 'the fast front is on by default');
  t.equal(min.tunnel.key, join(dir, 'tunnel.key'));
});

t.test("the relay's own listeners inside the range are reserved", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portico-relaycfg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'relay.yaml');
  writeFileSync(file, 'ports: { range: 7000-7100, bind: 127.0.0.1 }\napi: { listen: "127.0.0.1:7050" }\n');
  const cfg = loadRelayConfig({ configPath: file, dev: true });
  t.ok(cfg.ports.reserved.includes(7000), 'tunnel 127.0.0.1:7000');
  t.ok(cfg.ports.reserved.includes(7050), 'api');
  t.notOk(cfg.ports.reserved.includes(7400));

  writeFileSync(file, '[1, 2]\n');
  t.match(catchErr(() => loadRelayConfig({ configPath: file, dev: true })).message, /mapping of config keys/);
  t.match(catchErr(() => loadRelayConfig({ configPath: join(dir, 'missing.yaml'), dev: true })).message, /cannot read config file .*missing\.yaml: no such file/);
});

t.test('deploy/config relay examples load', async (t) => {
  const dir = join(root, 'deploy/config');
  const files = readdirSync(dir).filter((f) => /^relay\..*\.yaml$/.test(f));
  t.same(files.sort(), ['relay.dev.yaml', 'relay.example.yaml', 'relay.full.yaml']);
  t.ok(loadRelayConfig({ configPath: join(dir, 'relay.example.yaml'), dev: false }), 'relay.example.yaml (production)');
  const full = loadRelayConfig({ configPath: join(dir, 'relay.full.yaml'), dev: false });
  // relay.full.yaml documents the defaults: apart from the required keys it equals the defaults.
  const min = loadRelayConfig({ configPath: join(dir, 'relay.example.yaml'), dev: false });
  t.same(
    { ...full, tunnel: { ...full.tunnel, cert: 0, key: 0 }, https: { ...full.https, cert: 0, key: 0 } },
    { ...min, tunnel: { ...min.tunnel, cert: 0, key: 0 }, https: { ...min.https, cert: 0, key: 0 } },
    'relay.full.yaml states the real defaults',
  );
  // relay.dev.yaml is exactly what --dev means.
  t.same(loadRelayConfig({ configPath: join(dir, 'relay.dev.yaml'), dev: true, cwd: dir }), loadRelayConfig({ dev: true, cwd: dir }));
});
