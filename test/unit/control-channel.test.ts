// The control channel over a real mux stream pair: request/reply, errors, one-way, and messages after a readFrame'd hello.
import t, { type Test } from 'tap';
import { Session, type MuxStream } from '../../shared/mux/index.js';
import { ControlChannel } from '../../shared/control/channel.js';
import { readFrame } from '../../shared/framing/read-frame.js';
import { encodeFrame } from '../../shared/framing/length-prefixed.js';
import { socketPair } from '../helpers/socket-pair.js';
import { EnvelopeCodec } from '../../proto/index.js';
import { PorticoError, errorCodeToWire } from '../../shared/errors.js';

async function pair(t: Test): Promise<{ client: Session; server: Session; accepted: Promise<MuxStream> }> {
  let onStream!: (s: MuxStream) => void;
  const accepted = new Promise<MuxStream>((r) => (onStream = r));
  const [c, sSock] = await socketPair(t);
  const client = new Session(c, { isClient: true });
  const server = new Session(sSock, { isClient: false, onStream });
  t.teardown(() => {
    client.destroy();
    server.destroy();
  });
  return { client, server, accepted };
}

t.test('request/reply, error replies, one-way messages, after a hello read with readFrame', async (t) => {
  const { client, accepted } = await pair(t);
  const cs = client.open();
  const agent = new ControlChannel(cs, 2000);
  const first = agent.request({ hello: { maxVersion: 1, minVersion: 1, token: 'tok' } });
  const ss = await accepted;
  // The relay reads the hello itself (handshake), then hands the stream to a channel.
  const helloEnv = EnvelopeCodec.decode(await readFrame(ss, 1000));
  t.equal('hello' in helloEnv && helloEnv.hello.token, 'tok', 'hello read by readFrame');
  const relay = new ControlChannel(ss, 2000);
  relay.send({ welcome: { version: 1, serverId: 'gpu-7', owner: 'o', publicHostname: 'h', ports: [1], mappings: [] } }, helloEnv.id);
  const welcome = await first;
  t.equal('welcome' in welcome && welcome.welcome.serverId, 'gpu-7', 'the reply resolves the request');

  const got: string[] = [];
  relay.setHandlers({
    healthReport: (env) => {
      if ('healthReport' in env) got.push(env.healthReport.states[0]!.mappingId);
    },
    shutdown: () => {
      throw new PorticoError('NOT_FOUND', 'no such thing');
    },
  });
  agent.send({ healthReport: { states: [{ mappingId: 'm1', status: 'healthy' }] } });
  const ack = await agent.request({ healthReport: { states: [{ mappingId: 'm2', status: 'healthy' }] } });
  t.ok('ack' in ack, 'a handler returning nothing answers a request with Ack');
  t.same(got, ['m1', 'm2'], 'messages sent after the readFrame\'d hello reach the relay handlers');
  await t.rejects(agent.request({ shutdown: { reason: 'x' } }), { code: 'NOT_FOUND', message: 'no such thing' }, 'a thrown PorticoError comes back with its code');
  await t.rejects(agent.request({ mappingsUpdate: { mappings: [] } }), { code: 'PROTOCOL_ERROR' }, 'a request without a handler is refused');
  agent.setHandlers({ ack: () => new Promise<void>(() => undefined) });
  await t.rejects(relay.request({ ack: {} }, 100), { code: 'TIMEOUT' }, 'no reply within the timeout rejects');
  agent.close();
  await new Promise<void>((r) => relay.once('close', () => r()));
  t.ok(relay.closed && agent.closed, 'ending one side closes both channels');
});

t.test('malformed bytes on the control stream close only that channel with PROTOCOL_ERROR', async (t) => {
  const { client, accepted } = await pair(t);
  const cs = client.open();
  cs.write(encodeFrame(Buffer.from([0xff, 0xff, 0xff, 0xff])));
  const ss = await accepted;
  const relay = new ControlChannel(ss, 1000);
  const err = await new Promise<Error>((r) => relay.once('close', r));
  t.equal((err as PorticoError).code, 'PROTOCOL_ERROR');
  t.equal(errorCodeToWire('PROTOCOL_ERROR'), 13, 'wire number as in the proto enum');
});

t.test('a peer that sends requests but never reads the replies is disconnected at CONTROL_OUTPUT_LIMIT, not buffered without bound', async (t) => {
  const { client, accepted } = await pair(t);
  const cs = client.open();
  cs.pause(); // the hostile side reads nothing (its stream window fills, then the relay's replies queue)
  const reset = new Promise<Error>((r) => cs.once('error', r));
  const first = encodeFrame(EnvelopeCodec.encode({ id: 1, replyTo: 0, mappingsUpdate: { mappings: [] } }));
  cs.write(first);
  const ss = await accepted;
  const relay = new ControlChannel(ss, 2000);
  const closed = new Promise<Error>((r) => relay.once('close', r));
  // Requests the relay has no handler for (each answered with a PROTOCOL_ERROR "unexpected message"): bounded count and time.
  const batch = Buffer.concat(Array.from({ length: 1000 }, (_, i) => encodeFrame(EnvelopeCodec.encode({ id: i + 2, replyTo: 0, mappingsUpdate: { mappings: [] } }))));
  let sent = 0;
  const deadline = Date.now() + 20_000;
  while (!relay.closed && sent < 2_000_000 && Date.now() < deadline) {
    if (!cs.write(batch)) await new Promise((r) => setTimeout(r, 1));
    sent += 1000;
    if (sent % 20_000 === 0) await new Promise((r) => setImmediate(r));
  }
  const err = await Promise.race([closed, new Promise<null>((r) => setTimeout(() => r(null), 5_000))]);
  t.ok(err, `the channel closed (after ${sent} requests)`);
  t.match(err, { code: 'PROTOCOL_ERROR', message: /does not read the control stream: \d+ bytes .*limit 4194304/ });
  t.ok(ss.destroyed, 'its stream is destroyed (the replies queued for it are freed)');
  t.match(await reset, { message: /reset by peer/ }, 'the hostile side sees its control stream reset');
});
