// What the two TLS-pipe references (node-tls-pipe.ts, socat-tls.ts) share: a
// throwaway dev CA + leaf in a temp dir, and per forward two processes on
// 127.0.0.1 — a back that terminates TLS and dials the target, and a front
// that takes plain TCP and dials the back over TLS. Only the commands differ.
import path from 'node:path';
import { ensureDevCerts } from '../../../relay/tls/dev-certs.js';
import { assertLoopback, freePort, makeTempDir, removeTempDir, spawnTracked, stopChild, waitForPort, type Spawned } from './proc.js';
import type { Forward, PathAdapter, Target } from './types.js';

export const PIPE_HOST = '127.0.0.1';
/** The dev leaf certificate's name (the front verifies it). */
export const PIPE_SERVERNAME = 'connect01.localhost';

export interface PipeCerts {
  cert: string;
  key: string;
  ca: string;
}

export interface TlsPipeSpec {
  name: string;
  label: string;
  available: PathAdapter['available'];
  /** What runs, for the JSON report. */
  kind: string;
  /** Command and arguments of the back: TLS on PIPE_HOST:port, plain TCP to the target. */
  back(port: number, target: Target, certs: PipeCerts): [string, string[]];
  /** Command and arguments of the front: plain TCP on PIPE_HOST:port, TLS to the back. */
  front(port: number, backPort: number, certs: PipeCerts): [string, string[]];
}

/** A PathAdapter from a spec. info.relayPid / agentPid are the front and back of the latest forward (cpu-cost.ts reads them). */
export function tlsPipe(spec: TlsPipeSpec): PathAdapter {
  return {
    name: spec.name,
    label: spec.label,
    available: spec.available,
    open: async () => {
      const certDir = makeTempDir(spec.name);
      await ensureDevCerts(certDir, 'localhost', PIPE_SERVERNAME);
      const certs: PipeCerts = { cert: path.join(certDir, 'relay.crt'), key: path.join(certDir, 'relay.key'), ca: path.join(certDir, 'ca.pem') };
      const procs: Spawned[] = [];
      const spawnPart = async ([cmd, args]: [string, string[]], port: number): Promise<Spawned> => {
        const p = spawnTracked(cmd, args);
        procs.push(p);
        await waitForPort(PIPE_HOST, port, 5000, `${spec.label}: ${p.output()}`);
        return p;
      };
      const info: Record<string, unknown> = { kind: spec.kind };
      return {
        targetPorts: null,
        info,
        start: async (target): Promise<Forward> => {
          assertLoopback(target.targetHost);
          const backPort = await freePort(PIPE_HOST);
          const back = await spawnPart(spec.back(backPort, target, certs), backPort);
          const port = await freePort(PIPE_HOST);
          const front = await spawnPart(spec.front(port, backPort, certs), port);
          info.relayPid = front.child.pid;
          info.agentPid = back.child.pid;
          return { host: PIPE_HOST, port, stop: async () => void (await Promise.all([stopChild(front), stopChild(back)])) };
        },
        stop: async () => {
          await Promise.all(procs.map((p) => stopChild(p)));
          removeTempDir(certDir);
        },
      };
    },
  };
}
