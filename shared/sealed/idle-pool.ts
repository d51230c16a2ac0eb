/**
 * Data connections between streams (docs/native-data-path.md, "Reuse"): a
 * sealed data connection whose pair ended cleanly (FIN units both ways, so
 * nothing is in flight) waits here for the next stream instead of being
 * closed — a new raw TCP connection then costs no new TCP connection
 * between agent and relay. Each stream still gets its own keys.
 *
 * A parked connection is never read (a socket Node reads cannot be stopped
 * reliably before the engine takes it over: a resume scheduled for the
 * next tick starts reading again). Taking one checks it with a peek
 * instead: anything waiting on it, its end or an error, and it is closed.
 * Connections idle longer than `idleMs` are closed, at most `max` are
 * kept (a full pool first drops those the far side closed), and a sweep
 * every few seconds drops those the far side closed. The relay's limits
 * are the tighter ones, so it closes first and TIME_WAIT lands on its
 * side; the agent's idle timeout is only a backstop (closing a connection
 * the relay may still be draining a slow client's download from would
 * leave that download to an orphaned socket).
 */
import type net from 'node:net';
import { stopReading } from './engine.js';

interface Idle {
  sock: net.Socket;
  timer: NodeJS.Timeout | null;
}

export class IdleDataConnections {
  private readonly idle = new Map<string, Idle>();
  private readonly waiters = new Map<string, (s: net.Socket | undefined) => void>();
  private closed = false;

  private readonly sweeper: NodeJS.Timeout;

  /**
   * `quiet(sock)`: nothing waiting on the socket, no end, no error (the
   * engine's firstByte peek). Every `sweepMs` the parked ones are checked, so those
   * the far side closed do not linger (CLOSE_WAIT) until their idle timeout.
   */
  constructor(private readonly opts: { max: number; idleMs: number; sweepMs?: number; quiet: (sock: net.Socket) => boolean }) {
    this.sweeper = setInterval(() => this.sweep(), opts.sweepMs ?? 5_000);
    this.sweeper.unref();
  }

  get size(): number {
    return this.idle.size;
  }

  /** Parks `sock` under `id` (its first stream's id); closes it instead when full or closed. */
  put(id: string, sock: net.Socket): void {
    if (sock.destroyed) return;
    stopReading(sock);
    const waiter = this.waiters.get(id);
    if (waiter) {
      this.waiters.delete(id);
      waiter(sock);
      return;
    }
    // Full: first drop parked connections the far side has closed meanwhile (the agent keeps the
    // relay's closed ones until it looks), then refuse this one if still full.
    if (this.idle.size >= this.opts.max) this.sweep();
    if (this.closed || this.idle.size >= this.opts.max || this.idle.has(id)) {
      sock.destroy();
      return;
    }
    const timer = setTimeout(() => {
      if (this.idle.get(id)?.sock !== sock) return;
      this.idle.delete(id);
      sock.destroy();
    }, this.opts.idleMs);
    timer.unref();
    this.idle.set(id, { sock, timer });
  }

  /** Takes the connection parked under `id`, or any usable one when `id` is absent. */
  take(id?: string): { id: string; sock: net.Socket } | undefined {
    if (id !== undefined) {
      const sock = this.remove(id);
      return sock && this.usable(sock) ? { id, sock } : undefined;
    }
    for (const key of this.idle.keys()) {
      const sock = this.remove(key)!;
      if (this.usable(sock)) return { id: key, sock };
    }
    return undefined;
  }

  /**
   * The connection parked under `id`, waiting up to `ms` for it to be put
   * back (the agent: the relay may hand a connection to the next stream a
   * moment before this side's pair on it has seen the end).
   */
  async waitFor(id: string, ms: number): Promise<net.Socket | undefined> {
    const now = this.take(id);
    if (now || this.closed) return now?.sock;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        resolve(undefined);
      }, ms);
      this.waiters.set(id, (s) => {
        clearTimeout(timer);
        resolve(s && this.usable(s) ? s : undefined);
      });
    });
  }

  /** This side's pair on `id` failed: whoever waits for it stops waiting. */
  discard(id: string): void {
    const waiter = this.waiters.get(id);
    if (!waiter) return;
    this.waiters.delete(id);
    waiter(undefined);
  }

  /** Closes every idle connection and stops parking new ones. */
  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const id of [...this.idle.keys()]) this.remove(id)?.destroy();
    for (const w of this.waiters.values()) w(undefined);
    this.waiters.clear();
  }

  /** Closes and forgets every parked connection that is no longer quiet. */
  sweep(): void {
    for (const [id, e] of [...this.idle]) {
      if (this.opts.quiet(e.sock)) continue;
      this.remove(id);
      e.sock.destroy();
    }
  }

  private usable(sock: net.Socket): boolean {
    if (this.opts.quiet(sock)) return true;
    sock.destroy();
    return false;
  }

  private remove(id: string): net.Socket | undefined {
    const e = this.idle.get(id);
    if (!e) return undefined;
    this.idle.delete(id);
    if (e.timer) clearTimeout(e.timer);
    return e.sock;
  }
}
