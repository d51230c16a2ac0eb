import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import t from 'tap';

import { loadAgentConfig, parseMappingName } from '../../shared/config/agent-config.js';
import { PorticoError } from '../../shared/errors.js';

const root = process.cwd();
const dir = mkdtempSync(join(tmpdir(), 'portico-agentcfg-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
/** Writes `yaml` to a fresh file in the temp dir and returns its path. */
const file = (yaml: string): string => {
  const p = join(dir, `agent-${n++}.yaml`);
  writeFileSync(p, yaml);
  return p;
};

function catchErr(fn: () => unknown): PorticoError {
  try {
    fn();
  } catch (err) {
    if (err instanceof PorticoError) return err;
    throw err;
  }
  throw new Error('expected a PorticoError');
}

t.test('flags only, with defaults', async (t) => {
  const cfg = loadAgentConfig({ flags: { relay: 'connect01.localhost:7000', token: 'tok_abc' }, env: {} });
  t.same(cfg, {
    relay: { host: 'connect01.localhost', port: 7000 },
    token: 'tok_abc',
    insecure: false,
    localHost: '127.0.0.1',
    logLevel: 'info',
    mappings: [],
    streamWindow: 4 * 1024 * 1024,
    keepaliveInterval: 10_000,
    keepaliveTimeout: 30_000,
    maxBackoff: 30_000,
  });
  t.ok(Object.isFrozen(cfg) && Object.isFrozen(cfg.relay) && Object.isFrozen(cfg.mappings));
  t.same(loadAgentConfig({ flags: { relay: 'relay.example.com', token: 't' }, env: {} }).relay, { host: 'relay.example.com', port: 7000 }, 'port defaults to 7000');
  t.same(loadAgentConfig({ flags: { relay: '[::1]:7001', token: 't' }, env: {} }).relay, { host: '::1', port: 7001 });
});

t.test('missing relay or token names it', async (t) => {
  const e1 = catchErr(() => loadAgentConfig({ flags: { token: 't' }, env: {} }));
  t.equal(e1.code, 'CONFIG_INVALID');
  t.equal(e1.details?.key, 'relay');
  t.match(e1.message, /--relay/);
  const e2 = catchErr(() => loadAgentConfig({ flags: { relay: 'r:1' }, env: {} }));
  t.equal(e2.details?.key, 'token');
  t.match(e2.message, /PORTICO_TOKEN/);
});

t.test('token precedence: flag, file, then PORTICO_TOKEN', async (t) => {
  const f = file('relay: r.example.com:7000\ntoken: from-file\n');
  const env = { PORTICO_TOKEN: 'from-env' };
  t.equal(loadAgentConfig({ configPath: f, flags: { token: 'from-flag' }, env }).token, 'from-flag');
  t.equal(loadAgentConfig({ configPath: f, flags: {}, env }).token, 'from-file');
  t.equal(loadAgentConfig({ flags: { relay: 'r:1' }, env }).token, 'from-env');
});

t.test('an empty PORTICO_TOKEN counts as none', async (t) => {
  const e = catchErr(() => loadAgentConfig({ flags: { relay: 'r:1' }, env: { PORTICO_TOKEN: '' } }));
  t.equal(e.details?.key, 'token');
});

t.test('flags win over the file; paths are relative to their origin', async (t) => {
  const f = file(
    [
      'relay: file.example.com:7000',
      'token: file-token',
      'ca: certs/ca.pem',
      'server_name: relay.internal',
      'local_host: 10.0.0.5',
      'max_retries: 3',
      'log_level: warn',
      'stream_window: 8MiB',
      'keepalive_interval: 5s',
      'keepalive_timeout: 20s',
      'max_backoff: 1m',
    ].join('\n'),
  );
  const fromFile = loadAgentConfig({ configPath: f, flags: {}, env: {} });
  t.same(fromFile.relay, { host: 'file.example.com', port: 7000 });
  t.equal(fromFile.ca, join(dir, 'certs/ca.pem'));
  t.equal(fromFile.serverName, 'relay.internal');
  t.equal(fromFile.localHost, '10.0.0.5');
  t.equal(fromFile.maxRetries, 3);
  t.equal(fromFile.logLevel, 'warn');
  t.equal(fromFile.streamWindow, 8 * 1024 * 1024);
  t.equal(fromFile.keepaliveInterval, 5000);
  t.equal(fromFile.keepaliveTimeout, 20_000);
  t.equal(fromFile.maxBackoff, 60_000);

  const flagged = loadAgentConfig({
    configPath: f,
    flags: { relay: 'flag.example.com:7100', ca: 'other.pem', localHost: '127.0.0.2', maxRetries: '0', logLevel: 'debug' },
    env: {},
    cwd: '/opt/x',
  });
  t.same(flagged.relay, { host: 'flag.example.com', port: 7100 });
  t.equal(flagged.ca, resolve('/opt/x', 'other.pem'));
  t.equal(flagged.localHost, '127.0.0.2');
  t.equal(flagged.maxRetries, 0);
  t.equal(flagged.logLevel, 'debug');

  const insecure = loadAgentConfig({ configPath: f, flags: { insecure: true }, env: {} });
  t.equal(insecure.insecure, true);
  t.notOk('ca' in insecure, '--insecure drops the file ca');
  t.notOk('maxRetries' in loadAgentConfig({ flags: { relay: 'r:1', token: 't' }, env: {} }), 'retry forever by default');
});

t.test('bad values name the key or flag', async (t) => {
  const cases: Array<[string, Parameters<typeof loadAgentConfig>[0]['flags'], string]> = [
    ['relay: "::1:7000"\ntoken: t\n', {}, 'relay'],
    ['relay: r:1\ntoken: t\nmax_retries: -1\n', {}, 'max_retries'],
    ['relay: r:1\ntoken: t\nkeepalive_interval: 10\n', {}, 'keepalive_interval'],
    ['relay: r:1\ntoken: t\nkeepalive_interval: 30s\nkeepalive_timeout: 10s\n', {}, 'keepalive_timeout'],
    ['relay: r:1\ntoken: t\nstream_window: 1KiB\n', {}, 'stream_window'],
    ['relay: r:1\ntoken: t\ninsecure: maybe\n', {}, 'insecure'],
    ['relay: r:1\ntoken: t\nca: ca.pem\ninsecure: true\n', {}, 'insecure'],
    ['relay: r:1\ntoken: "two words"\n', {}, 'token'],
    ['relay: r:1\ntoken: t\nrelya: x\n', {}, 'relya'],
    ['relay: r:1\ntoken: t\n', { maxRetries: 'lots' }, '--max-retries'],
    ['relay: r:1\ntoken: t\n', { relay: 'nope:port' }, '--relay'],
    ['relay: r:1\ntoken: t\n', { ca: 'x.pem', insecure: true }, '--insecure'],
    ['relay: r:1\ntoken: t\nmappings: {internal_port: 1}\n', {}, 'mappings'],
  ];
  for (const [yaml, flags, key] of cases) {
    const e = catchErr(() => loadAgentConfig({ configPath: file(yaml), flags, env: {} }));
    t.equal(e.code, 'CONFIG_INVALID');
    t.ok(e.message.includes(key), `names ${key}: ${e.message}`);
  }
});

t.test('mappings', async (t) => {
  const f = file(`relay: r:7000
token: t
mappings:
  - internal_port: 8888
  - internal_port: 7860
    http: true
    name: gradio
    description: Gradio demo
  - internal_port: 8000
    external_port: 20005
    http: true
  - internal_port: 5000
    protocol: udp
    external_port: 20005
`);
  const cfg = loadAgentConfig({ configPath: f, flags: {}, env: {} });
  t.same(cfg.mappings, [
    { internalPort: 8888 },
    { internalPort: 7860, http: true, name: 'gradio', description: 'Gradio demo' },
    { internalPort: 8000, externalPort: 20005, http: true },
    { internalPort: 5000, protocol: 'udp', externalPort: 20005 },
  ]);

  const bad: Array<[string, string]> = [
    ['  - external_port: 20000\n', 'mappings[0].internal_port'],
    ['  - internal_port: 70000\n', 'mappings[0].internal_port'],
    ['  - internal_port: 80\n    nmae: x\n', 'mappings[0].nmae'],
    ['  - internal_port: 80\n  - internal_port: 81\n    name: Web_UI\n', 'mappings[1].name'],
    ['  - internal_port: 80\n    name: ' + 'a'.repeat(41) + '\n', 'mappings[0].name'],
    ['  - internal_port: 80\n    name: web\n  - internal_port: 81\n    name: web\n', 'mappings[1].name'],
    ['  - internal_port: 80\n    external_port: 20001\n  - internal_port: 81\n    external_port: 20001\n', 'mappings[1].external_port'],
    ['  - internal_port: 80\n    protocol: sctp\n', 'mappings[0].protocol'],
    ['  - internal_port: 80\n    protocol: udp\n    http: true\n', 'mappings[0].http'],
    ['  - 80\n', 'mappings[0]'],
    ['  - internal_port: 80\n  - internal_port: 80\n    external_port: 20001\n', 'mappings[1].internal_port'],
    ['  - internal_port: 80\n    description: ' + 'd'.repeat(201) + '\n', 'mappings[0].description'],
  ];
  for (const [items, key] of bad) {
    const e = catchErr(() => loadAgentConfig({ configPath: file(`relay: r:1\ntoken: t\nmappings:\n${items}`), flags: {}, env: {} }));
    t.ok(e.message.includes(`"${key}`) || e.message.includes(key), `names ${key}: ${e.message}`);
  }
});

t.test('mapping names', async (t) => {
  for (const ok of ['a', 'gradio', 'vllm-8000', '0abc', 'a'.repeat(40)]) t.equal(parseMappingName(ok), ok);
  for (const bad of ['', '-a', 'a-', 'A', 'a_b', 'a.b', 'a'.repeat(41), 5]) t.throws(() => parseMappingName(bad), `${JSON.stringify(bad)} refused`);
});

t.test('deploy/config agent examples load', async (t) => {
  const env = { PORTICO_TOKEN: 'example-token' };
  const ex = loadAgentConfig({ configPath: join(root, 'deploy/config/agent.example.yaml'), flags: {}, env });
  t.same(ex.relay, { host: 'connect01.example.com', port: 7000 });
  const full = loadAgentConfig({ configPath: join(root, 'deploy/config/agent.full.yaml'), flags: {}, env });
  t.same(
    full.mappings.map((m) => [m.internalPort, m.http ?? false, m.name ?? null]),
    [
      [8888, false, null],
      [7860, true, 'gradio'],
      [8000, true, null],
    ],
  );
  // Apart from mappings, agent.full.yaml states the real defaults.
  t.same({ ...full, mappings: [] }, { ...ex, mappings: [] });
});

t.test('relay address: host:port for TLS, wss:// URL for the WebSocket fallback', async (t) => {
  const { parseRelayAddress } = await import('../../shared/config/agent-config.js');
  t.same(parseRelayAddress('relay.example.com'), { hostPort: { host: 'relay.example.com', port: 7000 }, transport: 'tls', path: '' });
  t.same(parseRelayAddress('wss://relay.example.com/_tunnel'), { hostPort: { host: 'relay.example.com', port: 443 }, transport: 'websocket', path: '/_tunnel' });
  t.same(parseRelayAddress('wss://[::1]:8443'), { hostPort: { host: '::1', port: 8443 }, transport: 'websocket', path: '/_tunnel' });
  t.throws(() => parseRelayAddress('https://relay.example.com'), /wss:\/\/HOST/);
});
