/**
 * Loop guard. When an agent runs on the relay's own host, identity forwarding
 * to local_host:P can land on the relay's own public listener on P, which would
 * open another stream to the agent, and so on. The agent reports the local
 * address of every connection it makes (OpenResult.local_address/port); a
 * public connection arriving *from* one of those endpoints is a loop and is
 * refused. Because the accept and the agent's report race, an accept from a
 * local address on port P first waits (briefly) for pending opens that target
 * internal port P from agents that could reach this listener.
 *
 * An endpoint counts only for the port its agent dialled: a loop lands on the
 * relay's listener for exactly that port. So an agent on the relay's host that
 * reports endpoints it never used can at most get connections to the ports
 * its own mappings target refused, not any local client of any port.
 */
import type { OpenResult } from '../../proto/index.js';
import { normalizeAddress } from '../../shared/util/net.js';

const MAX_WAIT_MS = 2_000;

export class LoopGuard {
  /** internal port -> pending opens' settle promises. */
  private readonly pending = new Map<number, Set<Promise<unknown>>>();
  /** "addr:port>target" of sockets agents on this host opened to their local targets (target: the internal port dialled). */
  private readonly endpoints = new Set<string>();
  /** Connections refused as loops (for stats and tests). */
  refused = 0;

  /** Registers an open whose agent could reach this relay's listeners; its endpoint is forgotten when `stream` closes. */
  track(internalPort: number, opened: Promise<OpenResult>, stream: { readonly closed: boolean; once(event: 'close', fn: () => void): unknown }): void {
    let set = this.pending.get(internalPort);
    if (!set) this.pending.set(internalPort, (set = new Set()));
    const settled = opened.then(
      (r) => r,
      () => null,
    );
    set.add(settled);
    void settled.then((r) => {
      set!.delete(settled);
      if (set!.size === 0) this.pending.delete(internalPort);
      if (r?.ok && r.localPort) {
        // The stream may have closed before this ran: then there is nothing to remember.
        if (stream.closed) return;
        const key = `${normalizeAddress(r.localAddress)}:${r.localPort}>${internalPort}`;
        this.endpoints.add(key);
        stream.once('close', () => this.endpoints.delete(key));
      }
    });
  }

  /** True when a connection from remote addr:port to public `localPort` is one of our agents' own dials. */
  async isLoop(remoteAddress: string, remotePort: number, localPort: number): Promise<boolean> {
    const key = `${normalizeAddress(remoteAddress)}:${remotePort}>${localPort}`;
    if (this.endpoints.has(key)) return true;
    const set = this.pending.get(localPort);
    if (!set || set.size === 0) return false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((res) => {
      timer = setTimeout(res, MAX_WAIT_MS);
      timer.unref();
    });
    await Promise.race([Promise.all([...set]), timeout]);
    clearTimeout(timer);
    return this.endpoints.has(key);
  }
}
