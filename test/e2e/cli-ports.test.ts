// `portico ports add|update|rm|list` against a real running relay and agent:
// in-process through runPortsCli (stdout/stderr/exit code captured), plus
// the compiled `portico` binary once to prove the command is wired into main.
import t from 'tap';
import { rmSync } from 'node:fs';
import net from 'node:net';
import { TARGET_HOST, createServer, eventually, freePort, spawnPortico, startAgent, startRelay, type AgentHandle, type RelayHandle, type ServerHandle } from '../helpers/cluster.js';
import { runPortsCli } from '../../cli/commands/ports.js';

let relay: RelayHandle;
let server: ServerHandle;
let agent: AgentHandle;
let target: net.Server | undefined;

interface Run {
  code: number;
  out: string;
  err: string;
}

async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  let out = '';
  let err = '';
  const code = await runPortsCli(['ports', ...args], {
    stdout: (s) => void (out += s),
    stderr: (s) => void (err += s),
    env: { PORTICO_API: relay.apiUrl, PORTICO_API_KEY: relay.adminKey, ...env },
    cwd: relay.dataDir,
  });
  return { code, out, err };
}

function greeting(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let data = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (data += d));
    s.on('error', () => undefined);
    s.on('close', () => resolve(data));
    setTimeout(() => s.destroy(), 2_000).unref();
  });
}

t.before(async () => {
  relay = await startRelay();
  server = await createServer(relay, { id: 'gpu-cli', owner: 'carol' });
  agent = await startAgent(relay, server.token);
});

t.teardown(async () => {
  await agent?.stop();
  await relay?.stop();
  await new Promise<void>((r) => (target ? target.close(() => r()) : r()));
  if (relay) rmSync(relay.dataDir, { recursive: true, force: true, maxRetries: 3 });
});

let plainId = '';
let webId = '';

t.test('ports add: prints the public endpoint; the mapping carries traffic at once', async (t) => {
  const internal = await freePort(TARGET_HOST);
  target = net.createServer((s) => s.end('hi from cli target\n'));
  await new Promise<void>((r) => target!.listen(internal, TARGET_HOST, r));
  const r = await cli(['add', server.id, '--internal', String(internal), '--description', 'cli svc']);
  t.equal(r.code, 0, r.err);
  t.equal(r.err, '');
  const m = /^added mapping (port_[a-z2-7]+): connect01\.localhost:(\d+) -> internal port (\d+)$/m.exec(r.out);
  t.ok(m, `summary line in:\n${r.out}`);
  plainId = m![1]!;
  t.equal(Number(m![2]), server.ports[0], 'first block port');
  t.equal(Number(m![3]), internal);
  t.match(r.out, /description\s+cli svc/);
  t.equal(await eventually(() => greeting(server.ports[0]!), 2_000), 'hi from cli target\n', 'live through the relay');
});

t.test('ports add --http --name --external --json: the raw data with HTTPS URLs', async (t) => {
  const r = await cli(['--json', 'add', server.id, '--internal', '9001', '--external', String(server.ports[3]), '--http', '--name', 'notebook']);
  t.equal(r.code, 0, r.err);
  const d = JSON.parse(r.out);
  webId = d.id;
  t.equal(d.external_port, server.ports[3]);
  t.equal(d.http, true);
  t.equal(d.name, 'notebook');
  t.equal(d.url, `https://carol-notebook.localhost:${relay.ports.https}`, 'a named mapping: its named address');
  t.match(d.urls.https[0], /^https:\/\/[a-z2-7]{26}\.secure\.localhost:\d+$/);
  const text = await cli(['add', server.id, '--internal', '9002', '--http']);
  t.equal(text.code, 0);
  t.match(text.out, /^https\s+https:\/\/[a-z2-7]{26}\.secure\.localhost:/m, 'the text form lists the HTTPS URLs');
  t.match(text.out, new RegExp(`https://carol-${server.id}-9002\\.localhost:`));
  const id = /^added mapping (port_\S+):/m.exec(text.out)![1]!;
  t.equal((await cli(['rm', server.id, id])).code, 0);
});

t.test('ports list: a table of mappings; --json is the proxy view', async (t) => {
  const r = await cli(['list', server.id]);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /^server gpu-cli {2}ports \d+-\d+ {2}proxy active$/m);
  t.match(r.out, /^ID\s+PUBLIC\s+INTERNAL\s+PROTO\s+URL\s+NAME\s+SOURCE\s+STATUS\s+DESCRIPTION$/m);
  t.match(r.out, new RegExp(`^${plainId}\\s+connect01\\.localhost:${server.ports[0]}\\s+\\d+\\s+tcp\\s+tcp://\\S+\\s+-\\s+api\\s+active\\s+cli svc$`, 'm'));
  t.match(r.out, new RegExp(`^${webId}\\s+.*notebook\\s+api\\s+active`, 'm'));
  t.match(r.out, /other ports forward to the same internal port/);
  const j = await cli(['list', server.id, '--json']);
  const d = JSON.parse(j.out);
  t.equal(d.server_id, server.id);
  t.same(d.port_mappings.map((m: any) => m.id).sort(), [plainId, webId].sort());
  const ls = await cli(['ls', server.id]);
  t.equal(ls.code, 0, 'ls alias');
});

t.test('ports update: only the options given; --no-http, --clear-name', async (t) => {
  const r = await cli(['update', server.id, plainId, '--description', 'renamed svc']);
  t.equal(r.code, 0, r.err);
  t.match(r.out, new RegExp(`^updated mapping ${plainId}: `, 'm'));
  t.match(r.out, /description\s+renamed svc/);
  const j = await cli(['update', server.id, webId, '--no-http', '--clear-name', '--json']);
  t.equal(j.code, 0, j.err);
  const d = JSON.parse(j.out);
  t.equal(d.http, false);
  t.equal(d.name, null);
  t.equal(d.url, `tcp://connect01.localhost:${server.ports[3]}`);
  const none = await cli(['update', server.id, plainId]);
  t.equal(none.code, 1);
  t.match(none.err, /^error VALIDATION_FAILED: nothing to change/);
  const both = await cli(['update', server.id, plainId, '--udp', '--tcp']);
  t.equal(both.code, 1);
  t.match(both.err, /^error VALIDATION_FAILED: --udp and --tcp/);
});

t.test('errors: the API code and message, exit 1', async (t) => {
  const reserved = await cli(['add', server.id, '--internal', '8888']);
  t.equal(reserved.code, 1);
  t.match(reserved.err, /^error PORT_RESERVED: internal port 8888 is a platform port/);
  t.equal(reserved.out, '');
  const taken = await cli(['add', server.id, '--internal', '9005', '--external', String(server.ports[0])]);
  t.equal(taken.code, 1);
  t.match(taken.err, /^error PORT_ALREADY_MAPPED: external port \d+ is already mapped \(renamed svc\); use external port \d+/);
  const outside = await cli(['add', server.id, '--internal', '9005', '--external', '1']);
  t.match(outside.err, /^error PORT_OUT_OF_BLOCK: /);
  const udp = await cli(['add', server.id, '--internal', '9005', '--udp']);
  t.match(udp.err, /^error UDP_NOT_ENABLED: /);
  const name = await cli(['add', server.id, '--internal', '9005', '--name', 'Not OK']);
  t.match(name.err, /^error VALIDATION_FAILED: .*name/);
  const missing = await cli(['list', 'no-such-server']);
  t.equal(missing.code, 1);
  t.match(missing.err, /^error NOT_FOUND: server no-such-server not found/);
  const badKey = await cli(['list', server.id], { PORTICO_API_KEY: 'pak_wrong' });
  t.match(badKey.err, /^error UNAUTHORIZED: .*\(pass --api-key or set PORTICO_API_KEY\)/);
  const flagKey = await cli(['--api-key', relay.adminKey, 'list', server.id], { PORTICO_API_KEY: 'pak_wrong' });
  t.equal(flagKey.code, 0, '--api-key wins over the env');
  const port = await freePort();
  const down = await cli(['--api', `http://127.0.0.1:${port}`, 'list', server.id]);
  t.equal(down.code, 1);
  t.match(down.err, /^error API_UNREACHABLE: /);
});

t.test('usage errors use the same error line', async (t) => {
  const noInternal = await cli(['add', server.id]);
  t.not(noInternal.code, 0);
  t.match(noInternal.err, /^error USAGE: the internal port is required: ports add SERVER PORT, or --internal PORT/);
  const twice = await cli(['add', server.id, '9010', '--internal', '9011']);
  t.equal(twice.code, 1);
  t.match(twice.err, /^error USAGE: two internal ports given \(9010 and --internal 9011\)/);
  const badPort = await cli(['add', server.id, '--internal', 'eighty']);
  t.not(badPort.code, 0);
  t.match(badPort.err, /^error USAGE: .*port number/);
});

t.test('ports rm: removes; a second rm is NOT_FOUND', async (t) => {
  const r = await cli(['rm', server.id, webId]);
  t.equal(r.code, 0, r.err);
  t.equal(r.out, `removed mapping ${webId} from server ${server.id}\n`);
  const again = await cli(['rm', server.id, webId]);
  t.equal(again.code, 1);
  t.match(again.err, /^error NOT_FOUND: mapping .* not found/);
});

t.test('the portico binary has the ports command', async (t) => {
  const p = spawnPortico(['ports', 'list', server.id], { PORTICO_API: relay.apiUrl, PORTICO_API_KEY: relay.adminKey });
  const code = await p.exited;
  t.equal(code, 0);
  t.ok(p.out.lines.some((l) => l.startsWith(plainId)), 'lists the mapping');
  const rm = spawnPortico(['ports', 'rm', server.id, plainId], { PORTICO_API: relay.apiUrl, PORTICO_API_KEY: relay.adminKey });
  t.equal(await rm.exited, 0);
  const gone = spawnPortico(['ports', 'rm', server.id, plainId], { PORTICO_API: relay.apiUrl, PORTICO_API_KEY: relay.adminKey });
  t.equal(await gone.exited, 1, 'exit 1 on an API error');
  // The API options may also come first, before the command group; the internal port may be positional.
  const first = spawnPortico(['--api', relay.apiUrl, '--api-key', relay.adminKey, '--json', 'ports', 'add', server.id, '9020']);
  t.equal(await first.exited, 0, 'portico --api … --api-key … --json ports add SERVER 9020');
  const made = JSON.parse(first.out.lines.join('\n'));
  t.equal(made.internal_port, 9020, 'positional internal port');
  const listed = spawnPortico(['--api', relay.apiUrl, '--api-key', relay.adminKey, 'server', 'show', server.id]);
  t.equal(await listed.exited, 0, 'portico --api … server show');
  const rmFirst = spawnPortico(['--api', relay.apiUrl, '--api-key', relay.adminKey, 'ports', 'rm', server.id, made.id]);
  t.equal(await rmFirst.exited, 0);
});
