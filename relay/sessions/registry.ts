/** Which agent session serves which server, right now. One session per server; a newer one replaces the older. */
import { EventEmitter } from 'node:events';
import type { AgentSession } from './agent-session.js';

export class SessionRegistry extends EventEmitter {
  private readonly byServer = new Map<string, AgentSession>();

  get(serverId: string): AgentSession | undefined {
    const s = this.byServer.get(serverId);
    return s && !s.closed ? s : undefined;
  }

  /** Registers a session; returns the one it replaced, if any. */
  add(session: AgentSession): AgentSession | undefined {
    const old = this.byServer.get(session.serverId);
    this.byServer.set(session.serverId, session);
    session.once('close', () => {
      if (this.byServer.get(session.serverId) === session) {
        this.byServer.delete(session.serverId);
        this.emit('offline', session);
      }
    });
    this.emit('online', session, old);
    return old;
  }

  all(): AgentSession[] {
    return [...this.byServer.values()];
  }

  get size(): number {
    return this.byServer.size;
  }

  /** Data streams open across all sessions. */
  get openStreams(): number {
    let n = 0;
    for (const s of this.byServer.values()) n += s.openStreams;
    return n;
  }
}
