// Health checks and replica groups end to end: real relay, two servers of one
// owner with an agent each, a small named HTTP app behind each. The agent's
// checks (1 s interval) flip a mapping to unhealthy when its app stops and
// back when it starts. Health only steers replicas: a mapping's own host
// still tries its app (502 nothing listening when it is down), while the
// group host and the members' raw TCP ports spread requests round-robin
// over both replicas and fail over when one is unhealthy or its agent is
// gone; none eligible -> 503.
import t from 'tap';
import http from 'node:http';
import { rmSync } from 'node:fs';
import { TARGET_HOST, createServer, eventually, freePort, startAgent, startRelay, type AgentHandle } from '../helpers/cluster.js';
import { httpsHostsOf, webRequest } from '../helpers/web.js';
import { rawHttpBody } from '../helpers/targets.js';

interface NamedApp {
  name: string;
  port: number;
  hits: number;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** An app that answers every path with its name (and /health with 200) and can be stopped and started on the same port. */
async function namedApp(name: string): Promise<NamedApp> {
  const port = await freePort(TARGET_HOST);
  let server: http.Server | null = null;
  const app: NamedApp = {
    name,
    port,
    hits: 0,
    start: () =>
      new Promise<void>((resolve, reject) => {
        const s = http.createServer((req, res) => {
          if (req.url !== '/health') app.hits++;
          res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' }).end(`${name}\n`);
        });
        s.once('error', reject);
        s.listen({ host: TARGET_HOST, port, exclusive: true }, () => {
          server = s;
          resolve();
        });
      }),
    stop: () =>
      new Promise<void>((resolve) => {
        const s = server;
        server = null;
        if (!s) return resolve();
        s.closeAllConnections();
        s.close(() => resolve());
      }),
  };
  await app.start();
  return app;
}

const relay = await startRelay();
const a = await namedApp('alpha');
const b = await namedApp('beta');
const srvA = await createServer(relay, { id: 'rep-a', owner: 'team' });
const srvB = await createServer(relay, { id: 'rep-b', owner: 'team' });
const yaml = (port: number) => `mappings:\n  - { internal_port: ${port}, http: true, group: web, description: "replica" }`;
const agentA: AgentHandle = await startAgent(relay, srvA.token, { yaml: yaml(a.port) });
let agentB: AgentHandle = await startAgent(relay, srvB.token, { yaml: yaml(b.port) });
const hostA = await httpsHostsOf(agentA, a.port);
const port = relay.ports.https;
const groupHost = `team-web.localhost:${port}`;

t.teardown(async () => {
  await agentA.stop();
  await agentB.stop();
  await relay.stop();
  await Promise.all([a.stop(), b.stop()]);
  rmSync(relay.dataDir, { recursive: true, force: true });
});

async function mappingOf(serverId: string): Promise<any> {
  const res = await relay.api('GET', `/v1/servers/${serverId}/proxy?include_health=true`);
  return res.body.data.port_mappings[0];
}

async function health(serverId: string): Promise<string> {
  return (await mappingOf(serverId)).health_status;
}

/** n sequential requests to the group host; the app names that answered, in order. */
async function groupNames(n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await webRequest(relay, groupHost, { path: `/r${i}`, headers: { accept: 'application/json' } });
    out.push(r.status === 200 ? r.body.toString().trim() : `status ${r.status}`);
  }
  return out;
}

t.test('health checks are configured through the API and reach healthy', async (t) => {
  const check = { enabled: true, path: '/health', interval_seconds: 1, timeout_seconds: 1, retries: 1 };
  for (const s of [srvA, srvB]) {
    const m = await mappingOf(s.id);
    t.equal(m.group, 'web', 'group from agent.yaml');
    t.equal(m.health_status, 'unknown', 'no check configured yet: unknown');
    const put = await relay.api('PUT', `/v1/servers/${s.id}/proxy/ports/${m.id}`, { health_check: check });
    t.equal(put.status, 200, JSON.stringify(put.body));
  }
  await eventually(async () => (await health(srvA.id)) === 'healthy' && (await health(srvB.id)) === 'healthy', 10_000, 100);
  const m = await mappingOf(srvA.id);
  t.equal(m.health_status, 'healthy');
  t.match(m.health_check.last_check, /^\d{4}-\d\d-\d\dT/, 'last_check is a timestamp');
  t.equal(m.health_check.consecutive_failures, 0);
  const lb = (await relay.api('GET', `/v1/servers/${srvA.id}/proxy`)).body.data.network_configuration.load_balancer;
  t.equal(lb.enabled, true);
  t.equal(lb.algorithm, 'round_robin');
  t.equal(lb.health_check_enabled, true);
  t.equal(lb.groups[0].group, 'web');
  t.equal(lb.groups[0].url, `https://team-web.localhost:${port}`);
  t.same(
    lb.groups[0].members.map((x: any) => [x.server_id, x.online, x.health_status, x.receiving_traffic]).sort(),
    [
      ['rep-a', true, 'healthy', true],
      ['rep-b', true, 'healthy', true],
    ],
  );
});

t.test('round-robin over both replicas on the group host and on the raw TCP ports', async (t) => {
  const names = await groupNames(10);
  t.equal(names.filter((n) => n === 'alpha').length, 5, `alpha got half: ${names.join(',')}`);
  t.equal(names.filter((n) => n === 'beta').length, 5, 'beta got half');
  for (let i = 1; i < names.length; i++) t.not(names[i], names[i - 1], `request ${i} went to the other replica`);
  const rawPort = (await mappingOf(srvA.id)).external_port;
  const raw: (string | null)[] = [];
  for (let i = 0; i < 4; i++) raw.push(await rawHttpBody(rawPort));
  t.same([...raw].sort(), ['alpha', 'alpha', 'beta', 'beta'], `a member's public TCP port balances new connections too: ${raw.join(',')}`);
  // Each replica's own hosts still reach only that replica.
  const own = await webRequest(relay, `${hostA.secure}:${port}`);
  t.equal(own.body.toString().trim(), 'alpha', "a member's own token host is not balanced");
});

t.test('health flips to unhealthy when the app stops; its own host still tries it (502 nothing listening); the group avoids it; back when it starts', async (t) => {
  await a.stop();
  const flippedAt = Date.now();
  await eventually(async () => (await health(srvA.id)) === 'unhealthy', 8_000, 100);
  t.pass(`unhealthy ${Date.now() - flippedAt} ms after the app stopped`);
  const m = await mappingOf(srvA.id);
  t.ok(m.health_check.consecutive_failures >= 1, 'consecutive_failures counts');

  // Health only chooses between replicas: the mapping's own hosts still try the app (fail open), so
  // the client gets SPEC's real error, not a health verdict.
  const asJson = await webRequest(relay, `${hostA.secure}:${port}`, { headers: { accept: 'application/json' } });
  t.equal(asJson.status, 502, 'the real outcome: nothing is listening');
  t.equal(asJson.headers['x-portico-error'], 'NOTHING_LISTENING');
  const body = JSON.parse(asJson.body.toString());
  t.equal(body.success, false);
  t.match(body.error.message, /^nothing is listening on port \d+ inside rep-a; bind your app to 0\.0\.0\.0:\d+ or 127\.0\.0\.1:\d+/);
  const asHtml = await webRequest(relay, `${hostA.other}:${port}`, { headers: { accept: 'text/html,*/*;q=0.8' } });
  t.equal(asHtml.status, 502);
  t.match(asHtml.headers['content-type'], /text\/html/);

  const names = await groupNames(6);
  t.same(names, Array(6).fill('beta'), 'the group host sends everything to the healthy replica');
  const rawPort = (await mappingOf(srvA.id)).external_port;
  t.equal(await rawHttpBody(rawPort), 'beta', "even the unhealthy member's own TCP port goes to the healthy one");

  await a.start();
  await eventually(async () => (await health(srvA.id)) === 'healthy', 8_000, 100);
  const ok = await webRequest(relay, `${hostA.secure}:${port}`);
  t.equal(ok.status, 200, 'healthy again: served');
  const back = await groupNames(4);
  t.same([...back].sort(), ['alpha', 'alpha', 'beta', 'beta'], 'both replicas get traffic again');
});

t.test('failover when a replica goes offline; none eligible -> 503; recovery', async (t) => {
  await agentB.stop();
  const names = await groupNames(6);
  t.same(names, Array(6).fill('alpha'), 'offline replica gets no new requests');
  const lb = (await relay.api('GET', `/v1/servers/${srvA.id}/proxy`)).body.data.network_configuration.load_balancer;
  const memberB = lb.groups[0].members.find((x: any) => x.server_id === 'rep-b');
  t.equal(memberB.online, false);
  t.equal(memberB.receiving_traffic, false);

  await a.stop();
  await eventually(async () => (await health(srvA.id)) === 'unhealthy', 8_000, 100);
  const none = await webRequest(relay, groupHost, { headers: { accept: 'application/json' } });
  t.equal(none.status, 503, 'no healthy replica: 503');
  t.match(JSON.parse(none.body.toString()).error.message, /no replica of group "web"/);
  const html = await webRequest(relay, groupHost, { headers: { accept: 'text/html' } });
  t.equal(html.status, 503);
  t.match(html.body.toString(), /no replica of group/);

  await a.start();
  agentB = await startAgent(relay, srvB.token, { yaml: yaml(b.port) });
  await eventually(async () => (await health(srvA.id)) === 'healthy' && (await health(srvB.id)) === 'healthy', 10_000, 100);
  const back = await groupNames(4);
  t.same([...back].sort(), ['alpha', 'alpha', 'beta', 'beta'], 'both serve again after recovery');
});

t.test('group validation', async (t) => {
  const bad = await relay.api('POST', `/v1/servers/${srvA.id}/proxy/ports`, { internal_port: 9100, group: 'Bad_Name' });
  t.equal(bad.status, 400);
  t.equal(bad.body.error.code, 'VALIDATION_FAILED');
  const agentOwned = await relay.api('PUT', `/v1/servers/${srvA.id}/proxy/ports/${(await mappingOf(srvA.id)).id}`, { group: 'other' });
  t.equal(agentOwned.status, 400, 'group of an agent.yaml mapping belongs to agent.yaml');
});

t.test('a group member served by two agents (one token): the group host reaches both of them, and the other member', async (t) => {
  // A second agent for rep-a with the same agent.yaml, dialing 127.0.0.3 where "gamma" listens on alpha's port.
  const gamma = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' }).end('gamma\n'));
  await new Promise<void>((r) => gamma.listen({ host: '127.0.0.3', port: a.port, exclusive: true }, r));
  t.teardown(() => new Promise<void>((r) => gamma.close(() => r())));
  const second = await startAgent(relay, srvA.token, { yaml: yaml(a.port), localHost: '127.0.0.3' });
  t.teardown(() => second.stop());
  await eventually(async () => (await relay.api('GET', `/v1/servers/${srvA.id}`)).body.data.agents_connected === 2, 5_000);
  // Both rep-a agents must pass the check (the new one reports within a second) before it gets traffic.
  await eventually(async () => (await groupNames(8)).includes('gamma'), 10_000, 200);
  const got = await groupNames(12);
  const count = (n: string) => got.filter((x) => x === n).length;
  t.equal(count('beta'), 6, `rep-b gets every other request: ${got.join(',')}`);
  t.equal(count('alpha'), 3, "rep-a's first agent gets half of rep-a's share");
  t.equal(count('gamma'), 3, "and its second agent the other half (the pick moves each cursor once)");
});
