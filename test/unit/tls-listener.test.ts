// The tunnel listener (shared/transport/tls.ts) tells TLS connections from
// sealed data connections by their first byte, on real loopback sockets:
// with firstByte (and TCP_DEFER_ACCEPT, so the ClientHello is there at
// accept) a TLS connection goes to TLS without JavaScript reading it
// (onSealed never sees it); one whose ClientHello is not there yet, and one
// whose first byte is not TLS, are read by the listener and routed by what
// arrived. Without firstByte every connection is sniffed as before.
import t from 'tap';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDevCerts } from '../../relay/tls/dev-certs.js';
import { tlsServerTransport } from '../../shared/transport/tls.js';
import { sealedEngine } from '../../shared/sealed/engine.js';
import type { TransportListener } from '../../shared/transport/transport.js';

const dir = mkdtempSync(join(tmpdir(), 'portico-tlslisten-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const certs = await ensureDevCerts(dir, 'localhost', 'connect01.localhost');
const engine = sealedEngine();

interface Seen {
  tls: tls.TLSSocket[];
  sealed: Buffer[];
  /** firstByte's answers, in call order. */
  peeks: number[];
  /** Whether deferAccept set TCP_DEFER_ACCEPT. */
  deferred?: boolean;
}

async function listen(withPeek: boolean, defer = true): Promise<{ l: TransportListener; seen: Seen }> {
  const seen: Seen = { tls: [], sealed: [], peeks: [] };
  const l = await tlsServerTransport.listen(
    {
      host: '127.0.0.1',
      port: 0,
      cert: certs.cert,
      key: certs.key,
      handshakeTimeout: 5_000,
      onSealed: (raw, first) => {
        seen.sealed.push(first);
        raw.destroy();
      },
      ...(withPeek
        ? {
            firstByte: (raw: net.Socket) => {
              const b = engine ? engine.firstByte(raw) : -1;
              seen.peeks.push(b);
              return b;
            },
            ...(defer
              ? {
                  deferAccept: (server: net.Server) => {
                    seen.deferred = engine?.deferAccept(server, 5) ?? false;
                  },
                }
              : {}),
          }
        : {}),
    },
    (socket) => {
      seen.tls.push(socket as tls.TLSSocket);
      socket.on('data', (d: Buffer) => socket.write(d));
    },
    () => undefined,
  );
  t.teardown(async () => {
    for (const s of seen.tls) s.destroy();
    await l.close();
  });
  return { l, seen };
}

/** A TLS echo round trip over `sock` (a connected TCP socket, or null to dial). */
async function tlsEcho(port: number, sock?: net.Socket): Promise<string> {
  const c = tls.connect({ ...(sock ? { socket: sock } : { host: '127.0.0.1', port }), ca: certs.ca, servername: 'localhost' });
  await once(c, 'secureConnect');
  c.write('ping');
  const [d] = (await once(c, 'data')) as [Buffer];
  c.destroy();
  return d.toString();
}

t.test('with firstByte: the kernel defers accept until the ClientHello is there; TLS gets it unread', { skip: engine ? false : 'sealed engine not built' }, async (t) => {
  const { l, seen } = await listen(true);
  t.equal(seen.deferred, true, 'TCP_DEFER_ACCEPT set');
  // The client writes its ClientHello only after its 'connect' event, in this same process.
  t.equal(await tlsEcho(l.port), 'ping');
  t.equal(await tlsEcho(l.port), 'ping');
  t.same(seen.peeks, [0x16, 0x16], 'firstByte saw the TLS record byte at accept both times');
  t.equal(seen.sealed.length, 0, 'onSealed saw none of them');
});

t.test('with firstByte: a ClientHello that comes late still reaches TLS', { skip: engine ? false : 'sealed engine not built' }, async (t) => {
  const { l, seen } = await listen(true);
  const raw = net.connect({ host: '127.0.0.1', port: l.port });
  await once(raw, 'connect');
  // Silent for 150 ms: the kernel holds the connection, the listener never sees it.
  await new Promise((r) => setTimeout(r, 150));
  t.equal(seen.peeks.length, 0, 'not handed over while silent');
  t.equal(await tlsEcho(l.port, raw), 'ping');
  t.same(seen.peeks, [0x16], 'accepted only once the ClientHello arrived');
  t.equal(seen.sealed.length, 0);
  t.equal(seen.tls.length, 1);
});

t.test('with firstByte, no deferred accept: a ClientHello not there at accept is read and still reaches TLS', { skip: engine ? false : 'sealed engine not built' }, async (t) => {
  const { l, seen } = await listen(true, false);
  const raw = net.connect({ host: '127.0.0.1', port: l.port });
  await once(raw, 'connect');
  // The ClientHello goes out only once the listener has looked (and found nothing).
  for (let i = 0; i < 500 && seen.peeks.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
  t.same(seen.peeks, [-1], 'nothing had arrived at accept');
  t.equal(await tlsEcho(l.port, raw), 'ping');
  t.equal(seen.sealed.length, 0);
  t.equal(seen.tls.length, 1);
});

t.test('with firstByte: a connection that does not start with TLS goes to onSealed with its bytes', { skip: engine ? false : 'sealed engine not built' }, async (t) => {
  const { l, seen } = await listen(true);
  const raw = net.connect({ host: '127.0.0.1', port: l.port });
  await once(raw, 'connect');
  raw.write('PSD1 not tls');
  await once(raw, 'close');
  t.equal(seen.sealed.length, 1);
  t.match(seen.sealed[0]!.toString(), /^PSD1/);
  t.equal(seen.tls.length, 0);
});

t.test('without firstByte: TLS and sealed connections are told apart by reading', async (t) => {
  const { l, seen } = await listen(false);
  t.equal(await tlsEcho(l.port), 'ping');
  const raw = net.connect({ host: '127.0.0.1', port: l.port });
  await once(raw, 'connect');
  raw.write('PSD1');
  await once(raw, 'close');
  t.equal(seen.tls.length, 1);
  t.equal(seen.sealed.length, 1);
  t.equal(seen.peeks.length, 0);
});
