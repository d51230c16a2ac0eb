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

export class SessionRegistry extends EventEmitter {
  /** Per server, its live sessions, oldest first. */
  private readonly byServer = new Map<string, AgentSession[]>();
  private readonly cursor = new Map<string, number>();

  /**
   * The session for the next new stream of `serverId`: round-robin over its
   * live sessions, skipping those whose health check of `mappingId` fails
   * while another does not. The only session is returned whatever its health
   * (a lone mapping fails open: the client gets the real outcome).
   */
  get(serverId: string, mappingId?: string): AgentSession | undefined {
    const list = this.byServer.get(serverId);
    if (!list || list.length === 0) return undefined;
    if (list.length === 1) return list[0]!.closed ? undefined : list[0];
    const start = this.cursor.get(serverId) ?? 0;
    let fallback: AgentSession | undefined;
    for (let i = 0; i < list.length; i++) {
      const idx = (start + i) % list.length;
      const s = list[idx]!;
      if (s.closed) continue;
      if (mappingId !== undefined && s.healthOf(mappingId) === 'unhealthy') {
        fallback ??= s;
        continue;
      }
      this.cursor.set(serverId, idx + 1);
      return s;
    }
    return fallback;
  }

  /** The server's oldest live session: the one whose details the API shows. */
  primary(serverId: string): AgentSession | undefined {
    return this.byServer.get(serverId)?.find((s) => !s.closed);
  }

  /** Every live session of the server, oldest first. */
  sessionsOf(serverId: string): AgentSession[] {
    return (this.byServer.get(serverId) ?? []).filter((s) => !s.closed);
  }

  /** Registers a session beside the server's others; returns those others. */
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
