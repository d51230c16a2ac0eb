// socat: a plain userspace TCP relay (TCP-LISTEN,fork -> TCP), the floor any
// proxy that copies bytes through user space should be close to.
import { assertLoopback, freePort, spawnTracked, stopChild, waitForPort, which, type Spawned } from './proc.js';
import type { Forward, PathAdapter } from './types.js';

export const socat: PathAdapter = {
  name: 'socat',
  label: 'socat',
  available: async () => (which('socat') ? null : 'socat not installed (apt-get install socat)'),
  open: async () => {
    const bin = which('socat') as string;
    const procs: Spawned[] = [];
    return {
      targetPorts: null,
      info: { cmd: `${bin} TCP-LISTEN:P,bind=127.0.0.1,fork,reuseaddr TCP:target` },
      start: async ({ targetHost, targetPort }): Promise<Forward> => {
        assertLoopback(targetHost);
        const port = await freePort('127.0.0.1');
        const p = spawnTracked(bin, [
          `TCP-LISTEN:${port},bind=127.0.0.1,fork,reuseaddr,backlog=1024`,
          `TCP:${targetHost}:${targetPort}`,
        ]);
        procs.push(p);
        await waitForPort('127.0.0.1', port, 5000, `socat: ${p.output()}`);
        return { host: '127.0.0.1', port, stop: () => stopChild(p) };
      },
      stop: async () => {
        await Promise.all(procs.map((p) => stopChild(p)));
      },
    };
  },
};
