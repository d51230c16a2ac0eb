// Several agents with one server's token (SPEC: "several agents may serve one
// mapping (replicas): round-robin over the healthy ones"): real relay, two
// agent processes with the same token and agent.yaml, each in front of its
// own app (127.0.0.2 and 127.0.0.3, same port). Both stay connected; new
// HTTPS requests and raw TCP connections alternate between them; one whose
// health check fails gets none while the other passes; when one leaves, the
// other serves everything and the server stays online.
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import { rmSync } from 'node:fs';
import { createServer, eventually, freePort, startAgent, startRelay, type AgentHandle } from '../helpers/cluster.js';
import { httpsHostsOf, webRequest } from '../helpers/web.js';
import { rawHttpBody } from '../helpers/targets.js';

const HOSTS = ['127.0.0.2', '127.0.0.3'] as const;

/** An app on `host:port` answering its name; /health answers `healthStatus`. */
function app(host: string, port: number, name: string) {
  const state = { healthStatus: 200 };
  const server = http.createServer((req, res) => {
    if (req.url === '/health') return res.writeHead(state.healthStatus).end();
    res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' }).end(`${name}\n`);
  });
  return {
    state,
    listen: () => new Promise<void>((r) => server.listen({ host, port, exclusive: true }, r)),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const port = await freePort(HOSTS[0]);
const alpha = app(HOSTS[0], port, 'alpha');
const beta = app(HOSTS[1], port, 'beta');
await alpha.listen();
await beta.listen();
const relay = await startRelay();
const srv = await createServer(relay, { id: 'gpu-rep', owner: 'team' });
const yaml = `mappings:\n  - { internal_port: ${port}, http: true, name: svc }`;
const agentA: AgentHandle = await startAgent(relay, srv.token, { yaml, localHost: HOSTS[0] });
let agentB: AgentHandle | null = await startAgent(relay, srv.token, { yaml, localHost: HOSTS[1] });
const hosts = await httpsHostsOf(agentA, port);
const webHost = `${hosts.secure}:${relay.ports.https}`;

t.teardown(async () => {
  await agentA.stop();
  await agentB?.stop();
  await relay.stop();
  await Promise.all([alpha.close(), beta.close()]);
  rmSync(relay.dataDir, { recursive: true, force: true });
});

async function names(n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await webRequest(relay, webHost, { path: `/r${i}` });
    out.push(r.status === 200 ? r.body.toString().trim() : `status ${r.status}`);
  }
  return out;
}

async function mapping(): Promise<any> {
  const res = await relay.api('GET', `/v1/servers/${srv.id}/proxy?include_health=true`);
  return res.body.data.port_mappings.find((m: any) => m.internal_port === port);
}

t.test('both agents stay connected; the server shows two', async (t) => {
  await new Promise((r) => setTimeout(r, 1_500));
  t.equal(agentA.child.exitCode, null, 'the first agent was not pushed out');
  t.equal(agentB!.child.exitCode, null);
  const view = await relay.api('GET', `/v1/servers/${srv.id}`);
  t.equal(view.body.data.online, true);
  t.equal(view.body.data.agents_connected, 2);
  const m = await mapping();
  t.ok(m, 'one mapping from the shared agent.yaml, not two');
  t.equal((await relay.api('GET', `/v1/servers/${srv.id}/proxy`)).body.meta.total_port_mappings, 1);
});

t.test('new requests and connections alternate between the agents', async (t) => {
  const got = await names(10);
  t.equal(got.filter((n) => n === 'alpha').length, 5, `alpha got half: ${got.join(',')}`);
  t.equal(got.filter((n) => n === 'beta').length, 5, 'beta got half');
  const publicPort = (await mapping()).external_port;
  const raw: (string | null)[] = [];
  for (let i = 0; i < 4; i++) raw.push(await rawHttpBody(publicPort));
  t.same([...raw].sort(), ['alpha', 'alpha', 'beta', 'beta'], `raw TCP too: ${raw.join(',')}`);
});

t.test("an agent whose health check fails gets no new requests while the other's passes", async (t) => {
  const m = await mapping();
  const put = await relay.api('PUT', `/v1/servers/${srv.id}/proxy/ports/${m.id}`, { health_check: { enabled: true, path: '/health', interval_seconds: 1, timeout_seconds: 1, retries: 1 } });
  t.equal(put.status, 200);
  beta.state.healthStatus = 500;
  // Wait until beta's agent has reported the failure: every request lands on alpha.
  await eventually(async () => (await names(4)).every((n) => n === 'alpha'), 10_000, 200);
  const got = await names(6);
  t.same(got, Array(6).fill('alpha'), 'all on the passing agent');
  beta.state.healthStatus = 200;
  await eventually(async () => (await names(4)).includes('beta'), 10_000, 200);
  t.pass('beta takes requests again once its check passes');
});

t.test('an agent that is draining (SIGTERM, open connections) gets no new requests', async (t) => {
  // Hold one raw connection on each agent (round-robin), so a stopped agent keeps draining.
  const publicPort = (await mapping()).external_port;
  const held: net.Socket[] = [];
  for (let i = 0; i < 2; i++) {
    const s = net.connect({ host: '127.0.0.1', port: publicPort });
    s.on('error', () => undefined);
    await new Promise((r) => s.once('connect', r));
    held.push(s);
  }
  t.teardown(() => held.forEach((s) => s.destroy()));
  await eventually(async () => (await relay.api('GET', `/v1/servers/${srv.id}`)).body.data.open_streams === 2, 5_000);
  agentB!.child.kill('SIGTERM');
  // Once its GoAway has arrived every new request lands on alpha (before the fix, every other one failed).
  await eventually(async () => (await names(2)).every((n) => n === 'alpha'), 3_000, 50);
  t.equal(agentB!.child.exitCode, null, 'still draining its open connection');
  const got = await names(6);
  t.same(got, Array(6).fill('alpha'), `no request goes to the draining agent: ${got.join(',')}`);
  held.forEach((s) => s.destroy());
});

t.test('when one agent leaves, the other serves everything and the server stays online', async (t) => {
  await agentB!.stop();
  agentB = null;
  await eventually(async () => (await relay.api('GET', `/v1/servers/${srv.id}`)).body.data.agents_connected === 1, 5_000);
  t.same(await names(4), Array(4).fill('alpha'));
  t.equal((await relay.api('GET', `/v1/servers/${srv.id}`)).body.data.online, true);
  t.equal(agentA.child.exitCode, null, 'the first agent is still running');
});

t.test('a silent connection is closed when another agent of the server arrives; it comes back when it wakes', async (t) => {
  // Freeze the remaining agent (a dead container, a half-open connection), then start another.
  agentA.child.kill('SIGSTOP');
  t.teardown(() => void agentA.child.kill('SIGCONT'));
  const agentC = await startAgent(relay, srv.token, { yaml, localHost: HOSTS[1] });
  t.teardown(() => agentC.stop());
  await eventually(async () => (await relay.api('GET', `/v1/servers/${srv.id}`)).body.data.agents_connected === 1, 8_000, 100);
  t.pass('the frozen agent\'s connection was closed after it missed the ping');
  t.same(await names(4), Array(4).fill('beta'), 'everything goes to the agent that answers');
  agentA.child.kill('SIGCONT');
  await eventually(async () => (await relay.api('GET', `/v1/servers/${srv.id}`)).body.data.agents_connected === 2, 10_000, 100);
  t.equal(agentA.child.exitCode, null, 'the woken agent reconnected (not a fatal error)');
  const got = await names(6);
  t.ok(got.includes('alpha') && got.includes('beta'), `both serve again: ${got.join(',')}`);
});

t.test('an agent whose agent.yaml declares other mappings than its connected peers is refused, and changes nothing', async (t) => {
  const before = await mapping();
  const other = await startAgent(relay, srv.token, { yaml: `mappings:\n  - { internal_port: ${port + 1}, http: true }`, localHost: HOSTS[1], wait: false });
  const code = await Promise.race([other.exited, new Promise((r) => setTimeout(() => r('still running'), 10_000))]);
  t.equal(code, 2, 'a configuration error: exit 2');
  const { readFileSync } = await import('node:fs');
  t.match(readFileSync(other.logFile, 'utf8'), /CONFIG_INVALID.*already has 1 agent\(s\) connected whose agent\.yaml declares different mappings/);
  const after = await mapping();
  t.equal(after?.id, before.id, "the connected agent's mapping is untouched");
  t.equal(after?.url, before.url);
  t.equal((await relay.api('GET', `/v1/servers/${srv.id}`)).body.data.agents_connected, 1);
  t.same(await names(2), ['alpha', 'alpha']);
});

t.test('a changed agent.yaml goes through when the other agents are dead; a live one with the old yaml is then refused', async (t) => {
  agentA.child.kill('SIGSTOP'); // the old container is gone (its connection silent)
  const changed = await startAgent(relay, srv.token, { yaml: `mappings:\n  - { internal_port: ${port + 2}, http: true, name: svc2 }`, localHost: HOSTS[1] });
  t.teardown(() => changed.stop());
  const internals = async () => ((await relay.api('GET', `/v1/servers/${srv.id}/proxy`)).body.data.port_mappings as { internal_port: number }[]).map((m) => m.internal_port);
  t.same(await internals(), [port + 2], 'the new declaration replaced the old one after the silent agent missed its ping');
  t.equal((await relay.api('GET', `/v1/servers/${srv.id}`)).body.data.agents_connected, 1);
  agentA.child.kill('SIGCONT'); // the old agent comes back, with its old agent.yaml
  const code = await Promise.race([agentA.exited, new Promise((r) => setTimeout(() => r('still running'), 15_000))]);
  t.equal(code, 2, 'the returning agent with the old agent.yaml is refused (CONFIG_INVALID) while the new one is alive');
  t.same(await internals(), [port + 2], 'and changed nothing');
});

t.test("the API's health view follows the oldest agent that takes new streams: when it starts draining, the next one's results show at once", async (t) => {
  // Two fresh agents (the earlier ones are gone): P, the oldest, in front of alpha; Q in front of beta.
  alpha.state.healthStatus = 200;
  beta.state.healthStatus = 200;
  const agentP = await startAgent(relay, srv.token, { yaml, localHost: HOSTS[0] });
  t.teardown(() => agentP.stop());
  const agentQ = await startAgent(relay, srv.token, { yaml, localHost: HOSTS[1] });
  t.teardown(() => agentQ.stop());
  await eventually(async () => (await relay.api('GET', `/v1/servers/${srv.id}`)).body.data.agents_connected === 2, 5_000);
  const m = await mapping();
  const put = await relay.api('PUT', `/v1/servers/${srv.id}/proxy/ports/${m.id}`, { health_check: { enabled: true, path: '/health', interval_seconds: 1, timeout_seconds: 1, retries: 1 } });
  t.equal(put.status, 200);
  await eventually(async () => (await mapping()).health_status === 'healthy', 10_000, 100);
  // One held raw connection per agent (round-robin), so P keeps draining after SIGTERM.
  const held: net.Socket[] = [];
  t.teardown(() => held.forEach((s) => s.destroy()));
  for (let i = 0; i < 2; i++) {
    const s = net.connect({ host: '127.0.0.1', port: m.external_port });
    s.on('error', () => undefined);
    await new Promise((r) => s.once('connect', r));
    held.push(s);
  }
  await eventually(async () => (await relay.api('GET', `/v1/servers/${srv.id}`)).body.data.open_streams === 2, 5_000);
  // P's check fails: the view shows P's result (it is the primary); Q's still passes.
  alpha.state.healthStatus = 500;
  await eventually(async () => (await mapping()).health_status === 'unhealthy', 10_000, 100);
  // Q reports unchanged results only every 5 s: a view that waited for Q's next report would
  // stay "unhealthy" for up to 5 s after P began draining (P itself stops within 2 s of SIGTERM).
  agentP.child.kill('SIGTERM');
  const started = Date.now();
  await eventually(async () => (await mapping()).health_status === 'healthy', 5_000, 25);
  const took = Date.now() - started;
  t.ok(took < 1_500, `the view showed Q's "healthy" ${took} ms after P was told to stop`);
  t.equal(agentP.child.exitCode, null, 'P is still draining its held connection');
  held.forEach((s) => s.destroy());
});
