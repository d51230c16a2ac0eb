/** Client and server yamux sessions over a loopback TCP pair; both are destroyed at test end. */
import type net from 'node:net';
import type { Test } from 'tap';
import { Session, type SessionOptions } from '../../shared/mux/index.js';
import { socketPair } from './socket-pair.js';

export interface SessionPair {
  client: Session;
  server: Session;
  cs: net.Socket;
  ss: net.Socket;
}

export async function sessionPair(tt: Test, copts: Partial<SessionOptions> = {}, sopts: Partial<SessionOptions> = {}): Promise<SessionPair> {
  const [cs, ss] = await socketPair(tt);
  const client = new Session(cs, { isClient: true, ...copts });
  const server = new Session(ss, { isClient: false, ...sopts });
  tt.teardown(() => {
    client.destroy();
    server.destroy();
  });
  return { client, server, cs, ss };
}
