/** A connected loopback TCP socket pair for codec/session tests; both are destroyed at test end. */
import net from 'node:net';
import { once } from 'node:events';
import type { Test } from 'tap';

export async function socketPair(tt: Test): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const a = net.connect(port, '127.0.0.1');
  await once(a, 'connect');
  const [b] = await accepted;
  server.close();
  tt.teardown(async () => {
    for (const s of [a, b]) {
      if (!s.destroyed) s.destroy();
      if (!s.closed) await once(s, 'close');
    }
  });
  return [a, b];
}
