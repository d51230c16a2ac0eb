// SessionRegistry: several agent sessions per server (replica agents share a
// token). New streams go round-robin over the usable sessions with the best
// health for the mapping (healthy, then unknown, then unhealthy: a lone
// session is used whatever its health); draining sessions get none;
// 'offline' only when the last one leaves, 'replica-offline' for the others;
// 'replica-draining' when one stops taking new streams while another does.
import t from 'tap';
import { EventEmitter } from 'node:events';
import { SessionRegistry } from '../../relay/sessions/registry.js';
import type { AgentSession } from '../../relay/sessions/agent-session.js';

class FakeSession extends EventEmitter {
  closed = false;
  /** GoAway sent or received, terminating, or Welcome not sent yet. */
  draining = false;
  get usable(): boolean {
    return !this.closed && !this.draining;
  }
  openStreams = 0;
  states = new Map<string, string>();
  constructor(
    readonly serverId: string,
    readonly name: string,
  ) {
    super();
  }
  healthOf(mappingId: string): string {
    return this.states.get(mappingId) ?? 'unknown';
  }
  close(): void {
    this.closed = true;
    this.emit('close');
  }
}

const fake = (serverId: string, name: string) => new FakeSession(serverId, name);
const as = (s: FakeSession) => s as unknown as AgentSession;
const nameOf = (s: AgentSession | undefined) => (s as unknown as FakeSession | undefined)?.name;

t.test('round-robin over the live sessions of a server', async (t) => {
  const r = new SessionRegistry();
  const a = fake('s1', 'a');
  const b = fake('s1', 'b');
  const c = fake('s2', 'c');
  t.same(r.add(as(a)), [], 'the first session has no others');
  t.same(r.add(as(b)), [as(a)], 'the second joins the first');
  r.add(as(c));
  const picks = Array.from({ length: 6 }, () => nameOf(r.get('s1')));
  t.same(picks, ['a', 'b', 'a', 'b', 'a', 'b']);
  t.equal(nameOf(r.get('s2')), 'c');
  t.equal(r.get('nope'), undefined);
  t.equal(nameOf(r.primary('s1')), 'a', 'the oldest is the primary');
  t.equal(r.size, 2, 'servers online');
  t.equal(r.sessions, 3, 'sessions connected');
  a.openStreams = 2;
  b.openStreams = 3;
  t.equal(r.openStreams, 5);
});

t.test('health: a failing session is skipped while another passes; the only one is used anyway', async (t) => {
  const r = new SessionRegistry();
  const a = fake('s1', 'a');
  const b = fake('s1', 'b');
  r.add(as(a));
  r.add(as(b));
  b.states.set('m1', 'unhealthy');
  const picks = Array.from({ length: 4 }, () => nameOf(r.get('s1', 'm1')));
  t.same(picks, ['a', 'a', 'a', 'a'], 'b fails m1: all on a');
  const other = Array.from({ length: 4 }, () => nameOf(r.get('s1', 'm2'))).sort();
  t.same(other, ['a', 'a', 'b', 'b'], 'other mappings still alternate');
  a.states.set('m1', 'unhealthy');
  t.ok(r.get('s1', 'm1'), 'every session fails m1: one is still returned (fail open)');
  const lone = new SessionRegistry();
  const x = fake('s9', 'x');
  lone.add(as(x));
  x.states.set('m1', 'unhealthy');
  t.equal(nameOf(lone.get('s9', 'm1')), 'x', 'a lone session whatever its health');
});

t.test("closing: 'replica-offline' while others remain, 'offline' with the last", async (t) => {
  const r = new SessionRegistry();
  const events: string[] = [];
  r.on('offline', (s: FakeSession) => events.push(`offline ${s.name}`));
  r.on('replica-offline', (s: FakeSession) => events.push(`replica-offline ${s.name}`));
  const a = fake('s1', 'a');
  const b = fake('s1', 'b');
  r.add(as(a));
  r.add(as(b));
  a.close();
  t.same(events, ['replica-offline a']);
  t.equal(nameOf(r.primary('s1')), 'b', 'the next oldest becomes the primary');
  t.same(Array.from({ length: 3 }, () => nameOf(r.get('s1'))), ['b', 'b', 'b']);
  b.close();
  t.same(events, ['replica-offline a', 'offline b']);
  t.equal(r.get('s1'), undefined);
  t.equal(r.size, 0);
  t.equal(r.sessions, 0);
  t.same(r.sessionsOf('s1'), []);
});

t.test("draining: 'replica-draining' while another takes new streams (the primary moves on), nothing for the last one", async (t) => {
  const r = new SessionRegistry();
  const events: string[] = [];
  r.on('replica-draining', (s: FakeSession) => events.push(`replica-draining ${s.name} primary ${nameOf(r.primary('s1'))}`));
  const a = fake('s1', 'a');
  const b = fake('s1', 'b');
  r.add(as(a));
  r.add(as(b));
  a.draining = true;
  a.emit('draining');
  t.same(events, ['replica-draining a primary b'], 'the listener already sees the next primary');
  b.draining = true;
  b.emit('draining');
  t.same(events, ['replica-draining a primary b'], 'no usable peer left: no event (the server keeps its last view until it goes offline)');
});

t.test('a closed session that has not emitted close yet is never picked', async (t) => {
  const r = new SessionRegistry();
  const a = fake('s1', 'a');
  const b = fake('s1', 'b');
  r.add(as(a));
  r.add(as(b));
  a.closed = true; // closing: the mux is gone, the 'close' event comes later
  t.same(Array.from({ length: 3 }, () => nameOf(r.get('s1'))), ['b', 'b', 'b']);
  t.same(r.sessionsOf('s1').map(nameOf), ['b']);
});

t.test('a healthy agent is preferred over one whose first check has not come back (unknown)', async (t) => {
  const r = new SessionRegistry();
  const a = fake('s1', 'a');
  const b = fake('s1', 'b');
  r.add(as(a));
  r.add(as(b));
  a.states.set('m1', 'healthy');
  t.same(Array.from({ length: 3 }, () => nameOf(r.get('s1', 'm1'))), ['a', 'a', 'a'], 'b (unknown) waits for its first passing check');
  b.states.set('m1', 'healthy');
  t.same(Array.from({ length: 4 }, () => nameOf(r.get('s1', 'm1'))).sort(), ['a', 'a', 'b', 'b']);
  t.equal(r.passing('s1', 'm1'), true);
  a.states.set('m1', 'unhealthy');
  b.states.set('m1', 'unhealthy');
  t.equal(r.passing('s1', 'm1'), false, 'passing: no usable agent without a failed check');
});

t.test('a draining agent (GoAway, terminating, no Welcome yet) gets no new streams', async (t) => {
  const r = new SessionRegistry();
  const a = fake('s1', 'a');
  const b = fake('s1', 'b');
  r.add(as(a));
  r.add(as(b));
  b.draining = true;
  t.same(Array.from({ length: 3 }, () => nameOf(r.get('s1'))), ['a', 'a', 'a']);
  t.equal(nameOf(r.primary('s1')), 'a');
  t.same(r.peersOf('s1').map(nameOf), ['a']);
  t.same(r.sessionsOf('s1').map(nameOf), ['a', 'b'], 'still listed for terminate/update until it closes');
  a.draining = true;
  t.equal(r.get('s1'), undefined, 'none usable: none');
  t.equal(r.primary('s1'), undefined);
});
