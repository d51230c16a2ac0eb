/**
 * Which agent sessions serve which server, right now. Several agents may run
 * with one server's token (replicas of the same container image): each new
 * connection joins the others, and new streams go round-robin over the live
 * sessions, preferring those whose own health check of the mapping is not
 * failing. A connection that has gone silent is not kept by mistake: when a
 * new one arrives the relay pings the others and ends those that do not
 * answer (relay.ts).
 */
import { EventEmitter } from 'node:events';
import type { AgentSession } from './agent-session.js';

/** Preference by an agent's own health result for a mapping (lower first). */
const RANK: Record<string, number> = { healthy: 0, unknown: 1, unhealthy: 2 };

export class SessionRegistry extends EventEmitter {
  /** Per server, its live sessions, oldest first. */
  private readonly byServer = new Map<string, AgentSession[]>();
  private readonly cursor = new Map<string, number>();

  /**
   * The session for the next new stream of `serverId`: round-robin over the
   * usable sessions (Welcome sent, no GoAway, not terminating) with the best
   * health for `mappingId` — healthy before unknown (a new agent whose first
   * check has not passed yet) before unhealthy, so an agent whose check fails
   * gets nothing while another passes, and the only one is used whatever its
   * health (fail open). Moves the server's cursor: call it once per stream.
   */
  get(serverId: string, mappingId?: string): AgentSession | undefined {
    const list = this.byServer.get(serverId);
    if (!list || list.length === 0) return undefined;
    if (list.length === 1) return list[0]!.usable ? list[0] : undefined;
    let best = 3;
    if (mappingId !== undefined) for (const s of list) if (s.usable) best = Math.min(best, RANK[s.healthOf(mappingId)] ?? 1);
    const start = this.cursor.get(serverId) ?? 0;
    for (let i = 0; i < list.length; i++) {
      const idx = (start + i) % list.length;
      const s = list[idx]!;
      if (!s.usable) continue;
      if (mappingId !== undefined && (RANK[s.healthOf(mappingId)] ?? 1) !== best) continue;
      this.cursor.set(serverId, idx + 1);
      return s;
    }
    return undefined;
  }

  /** True when some usable session of the server has not failed its check of `mappingId` (no cursor move). */
  passing(serverId: string, mappingId: string): boolean {
    return (this.byServer.get(serverId) ?? []).some((s) => s.usable && s.healthOf(mappingId) !== 'unhealthy');
  }

  /** The server's oldest usable session: the one whose details and health the API shows (no cursor move). */
  primary(serverId: string): AgentSession | undefined {
    return this.byServer.get(serverId)?.find((s) => s.usable);
  }

  /** Every session of the server not closed yet (terminating ones included), oldest first. */
  sessionsOf(serverId: string): AgentSession[] {
    return (this.byServer.get(serverId) ?? []).filter((s) => !s.closed);
  }

  /** Usable sessions of the server other than `except` (a new agent's peers). */
  peersOf(serverId: string, except?: AgentSession): AgentSession[] {
    return (this.byServer.get(serverId) ?? []).filter((s) => s !== except && s.usable);
  }

  /** Registers a session beside the server's others; returns those others (not closed). */
  add(session: AgentSession): AgentSession[] {
    const list = this.byServer.get(session.serverId) ?? [];
    const others = list.filter((s) => !s.closed);
    this.byServer.set(session.serverId, [...others, session]);
    session.once('close', () => {
      const now = this.byServer.get(session.serverId);
      if (!now?.includes(session)) return;
      const rest = now.filter((s) => s !== session);
      if (rest.length > 0) {
        this.byServer.set(session.serverId, rest);
        this.emit('replica-offline', session);
      } else {
        this.byServer.delete(session.serverId);
        this.cursor.delete(session.serverId);
        this.emit('offline', session);
      }
    });
    // It stops taking new streams before it closes (an agent draining on SIGTERM): while others
    // serve the server, the primary — whose details and health the API shows — may now be another.
    session.once('draining', () => {
      if (this.peersOf(session.serverId, session).length > 0) this.emit('replica-draining', session);
    });
    this.emit('online', session, others);
    return others;
  }

  all(): AgentSession[] {
    return [...this.byServer.values()].flat();
  }

  /** Servers with at least one agent connected. */
  get size(): number {
    return this.byServer.size;
  }

  /** Agent sessions connected, replicas included. */
  get sessions(): number {
    let n = 0;
    for (const l of this.byServer.values()) n += l.length;
    return n;
  }

  /** Data streams open across all sessions. */
  get openStreams(): number {
    let n = 0;
    for (const l of this.byServer.values()) for (const s of l) n += s.openStreams;
    return n;
  }
}
