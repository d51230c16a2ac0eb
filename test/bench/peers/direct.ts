// direct: the client talks to the target service itself (the 1.00 baseline).
import type { PathAdapter } from './types.js';

export const direct: PathAdapter = {
  name: 'direct',
  label: 'direct',
  available: async () => null,
  open: async () => ({
    targetPorts: null,
    info: { kind: 'loopback, no forwarding' },
    start: async ({ targetHost, targetPort }) => ({ host: targetHost, port: targetPort, stop: async () => {} }),
    stop: async () => {},
  }),
};
