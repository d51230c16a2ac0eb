// Two socat forwarders in series (client -> socat A -> socat B -> service): the
// same processes and the same four extra loopback hops per round trip as
// relay -> agent, with no TLS and no multiplexer. It is the latency floor of
// that topology on the machine at hand, measured beside the tunnel so the
// issue-7 latency budget can be read against what any two-forwarder design
// (ssh -R included) must pay for hops alone.
import { socat } from './socat.js';
import type { Forward, PathInstance, Target } from './types.js';

export interface SocatChain {
  /** The outer socat's public side. */
  forward: Forward;
  /** The socat instance holding both forwards; stop() ends them. */
  inst: PathInstance;
}

export async function startSocatChain(target: Target): Promise<SocatChain> {
  const inst: PathInstance = await socat.open({ targetHost: target.targetHost });
  try {
    const inner = await inst.start(target);
    const outer = await inst.start({ targetHost: inner.host, targetPort: inner.port });
    return { forward: outer, inst };
  } catch (e) {
    await inst.stop();
    throw e;
  }
}
