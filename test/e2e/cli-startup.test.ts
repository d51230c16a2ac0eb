// Start-up contract: bad relay config is refused naming the key; agent exit codes; SIGTERM.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, freePort, spawnPortico, startCluster } from '../helpers/cluster.js';

const dir = mkdtempSync(join(tmpdir(), 'portico-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const cases: [string, string, RegExp][] = [
  ['unknown key', 'ports:\n  rnage: 20000-20100\n', /ports\.rnage/],
  ['bad port range', 'ports:\n  range: 30000-20000\n', /ports\.range/],
  ['per_server below 10', 'ports:\n  per_server: 9\n', /ports\.per_server/],
  ['per_server above 40', 'ports:\n  per_server: 41\n', /ports\.per_server/],
  ['bad duration', 'udp:\n  flow_idle_timeout: soon\n', /udp\.flow_idle_timeout/],
];
for (const [name, yaml, re] of cases) {
  t.test(`relay refuses to start: ${name}`, async (t) => {
    const file = join(dir, `${name.replace(/\W+/g, '-')}.yaml`);
    writeFileSync(file, `data_dir: ${join(dir, 'data')}\n${yaml}`);
    const log = join(dir, `${name.replace(/\W+/g, '-')}.log`);
    const p = spawnPortico(['relay', '--dev', '--config', file], {}, log);
    t.equal(await p.exited, 2, 'exit status 2');
    t.match(readFileSync(log, 'utf8'), re, 'the message names the key');
  });
}

t.test('agent: --max-retries gives up with exit 1 when the relay is unreachable', async (t) => {
  const port = await freePort();
  const log = join(dir, 'agent-unreachable.log');
  const p = spawnPortico(['agent', '--relay', `127.0.0.1:${port}`, '--token', `ptk_x_${'b'.repeat(32)}`, '--insecure', '--max-retries', '2'], {}, log);
  t.equal(await p.exited, 1, 'exit status 1');
  t.match(readFileSync(log, 'utf8'), /unreachable after 3 attempts/, 'says why');
});

t.test('agent: missing token is a config error (exit 2)', async (t) => {
  const log = join(dir, 'agent-notoken.log');
  const p = spawnPortico(['agent', '--relay', '127.0.0.1:7000', '--insecure'], { PORTICO_TOKEN: '' }, log);
  t.equal(await p.exited, 2, 'exit status 2');
  t.match(readFileSync(log, 'utf8'), /token/, 'names the token');
});

t.test('SIGTERM: agent exits 0, relay drains and exits 0; endpoint lines follow the spec format', async (t) => {
  const c = await startCluster();
  const lines = c.agent.out.lines;
  await eventually(() => lines.filter((l) => l.startsWith('tcp  ')).length >= c.server.ports.length);
  t.ok(lines.some((l) => /^tcp  \S+:\d+ -> 127\.0\.0\.2:\d+$/.test(l)), 'a line like "tcp  host:port -> 127.0.0.2:port"');
  t.equal(lines.filter((l) => l.startsWith('tcp  ')).length, c.server.ports.length, 'one line per endpoint of the block');
  t.equal(await c.agent.stop('SIGTERM'), 0, 'agent exit 0');
  t.equal(await c.relay.stop('SIGTERM'), 0, 'relay exit 0');
  rmSync(c.relay.dataDir, { recursive: true, force: true });
});

t.test('SIGTERM drain: a transfer inside the grace period finishes; a connection held past it is closed and the relay exits 0', async (t) => {
  const { startEcho } = await import('../helpers/targets.js');
  const net = await import('node:net');
  const echo = await startEcho('127.0.0.2');
  t.teardown(() => echo.close());
  const c = await startCluster({ relay: { extraYaml: 'shutdown_grace: 2s' }, agent: { yaml: `mappings:\n  - { internal_port: ${echo.port} }` } });
  t.teardown(() => rmSync(c.relay.dataDir, { recursive: true, force: true }));
  const view = await c.relay.api('GET', `/v1/servers/${c.server.id}/proxy`);
  const publicPort = view.body.data.port_mappings[0].external_port as number;
  // One client that never ends its side (an SSH session), one that sends a little late and reads the echo.
  const held = net.connect({ host: '127.0.0.1', port: publicPort });
  const heldClosed = new Promise<void>((r) => held.once('close', () => r()));
  held.on('error', () => undefined);
  await new Promise((r) => held.once('connect', r));
  held.write('hold');
  await new Promise((r) => held.once('data', r));
  const late = net.connect({ host: '127.0.0.1', port: publicPort });
  late.on('error', () => undefined);
  await new Promise((r) => late.once('connect', r));
  let echoed = '';
  late.on('data', (d: Buffer) => (echoed += d.toString()));
  const started = Date.now();
  const stopped = c.relay.stop('SIGTERM');
  setTimeout(() => late.end('inside the grace period'), 500);
  t.equal(await stopped, 0, 'relay exit 0');
  const took = Date.now() - started;
  t.ok(took >= 1_500 && took < 8_000, `exited after the 2 s grace period, not when the held client left (${took} ms)`);
  await heldClosed;
  t.pass('the held connection was closed by the relay');
  t.equal(echoed, 'inside the grace period', 'the transfer inside the grace period finished intact');
  await c.agent.stop('SIGTERM');
});

t.test("agent without --ca trusts the system's store (SSL_CERT_FILE), not only Node's built-in roots", async (t) => {
  const { startRelay } = await import('../helpers/cluster.js');
  const relay = await startRelay();
  t.teardown(async () => {
    await relay.stop();
    rmSync(relay.dataDir, { recursive: true, force: true });
  });
  const bogus = `ptk_x_${'c'.repeat(32)}`;
  // Untrusted: the dev CA is in no store the agent reads.
  const log1 = join(dir, 'agent-untrusted.log');
  const untrusted = spawnPortico(['agent', '--relay', relay.tunnelAddr, '--token', bogus, '--max-retries', '0'], { SSL_CERT_FILE: '/nonexistent' }, log1);
  t.equal(await untrusted.exited, 1, 'an untrusted relay: exit 1');
  t.match(readFileSync(log1, 'utf8'), /certificate/i, 'says the certificate is not trusted');
  // Trusted through the system bundle: TLS passes, so the relay itself answers (bad token: exit 2).
  const log2 = join(dir, 'agent-system-ca.log');
  const trusted = spawnPortico(['agent', '--relay', relay.tunnelAddr, '--token', bogus, '--max-retries', '0'], { SSL_CERT_FILE: relay.caPath }, log2);
  t.equal(await trusted.exited, 2, 'TLS verified against the system bundle; the relay refused the token');
  t.match(readFileSync(log2, 'utf8'), /UNAUTHORIZED/);
  // NODE_EXTRA_CA_CERTS still counts beside the system trust.
  const log3 = join(dir, 'agent-extra-ca.log');
  const extra = spawnPortico(['agent', '--relay', relay.tunnelAddr, '--token', bogus, '--max-retries', '0'], { SSL_CERT_FILE: '/nonexistent', NODE_EXTRA_CA_CERTS: relay.caPath }, log3);
  t.equal(await extra.exited, 2, 'trusted through NODE_EXTRA_CA_CERTS');
  // A bundle path that is not a regular file (a device) is skipped, not read.
  const log4 = join(dir, 'agent-dev-zero.log');
  const dev = spawnPortico(['agent', '--relay', relay.tunnelAddr, '--token', bogus, '--max-retries', '0'], { SSL_CERT_FILE: '/dev/zero' }, log4);
  t.equal(await dev.exited, 1, '/dev/zero as SSL_CERT_FILE: skipped (untrusted), not read forever');
});
