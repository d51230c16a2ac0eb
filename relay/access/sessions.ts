/**
 * Browser login sessions of the HTTPS endpoints: an in-memory table of random
 * 256-bit session ids (the cookie value) -> user, bound to the mapping whose
 * login created it, with an absolute expiry (`session_timeout_minutes`) and a
 * per server and user cap (`max_concurrent_sessions`). Sessions do not survive
 * a relay restart (users log in again). Bounded: expired sessions are swept
 * when the table grows, and the table refuses new sessions past `maxSessions`.
 * No I/O; `now` is passed in.
 */
import { randomBytes } from 'node:crypto';

export interface Session {
  id: string;
  serverId: string;
  mappingId: string;
  userId: string;
  username: string;
  createdAt: number;
  expiresAt: number;
}

export type CreateResult = { ok: true; session: Session } | { ok: false; reason: 'user_limit' | 'table_full'; active: number };

export class SessionStore {
  private readonly byId = new Map<string, Session>();
  /** `${serverId}\0${userId}` -> ids of its sessions. */
  private readonly byUser = new Map<string, Set<string>>();
  private creates = 0;

  constructor(private readonly maxSessions = 100_000) {}

  get size(): number {
    return this.byId.size;
  }

  /** The live session of a cookie value, or undefined (expired ones are removed). */
  get(id: string, now: number): Session | undefined {
    const s = this.byId.get(id);
    if (s === undefined) return undefined;
    if (s.expiresAt <= now) {
      this.remove(s);
      return undefined;
    }
    return s;
  }

  /** Live sessions of one user on one server. */
  active(serverId: string, userId: string, now: number): number {
    const ids = this.byUser.get(`${serverId}\0${userId}`);
    if (!ids) return 0;
    let n = 0;
    for (const id of [...ids]) if (this.get(id, now)) n++;
    return n;
  }

  /** Creates a session unless the user already has `maxPerUser` live ones (null = no cap). */
  create(
    fields: { serverId: string; mappingId: string; userId: string; username: string },
    ttlMs: number,
    maxPerUser: number | null,
    now: number,
  ): CreateResult {
    if (++this.creates % 256 === 0 || this.byId.size >= this.maxSessions) this.sweep(now);
    if (this.byId.size >= this.maxSessions) return { ok: false, reason: 'table_full', active: this.byId.size };
    if (maxPerUser !== null) {
      const active = this.active(fields.serverId, fields.userId, now);
      if (active >= maxPerUser) return { ok: false, reason: 'user_limit', active };
    }
    const session: Session = { ...fields, id: randomBytes(32).toString('base64url'), createdAt: now, expiresAt: now + ttlMs };
    this.byId.set(session.id, session);
    const k = `${fields.serverId}\0${fields.userId}`;
    let ids = this.byUser.get(k);
    if (!ids) this.byUser.set(k, (ids = new Set()));
    ids.add(session.id);
    return { ok: true, session };
  }

  /** Ends one session (logout). */
  delete(id: string): boolean {
    const s = this.byId.get(id);
    if (!s) return false;
    this.remove(s);
    return true;
  }

  /** Ends every session whose user no longer exists (`keep` says which user ids still do), or all of a server's. */
  retain(keep: (s: Session) => boolean): number {
    let n = 0;
    for (const s of [...this.byId.values()]) {
      if (!keep(s)) {
        this.remove(s);
        n++;
      }
    }
    return n;
  }

  sweep(now: number): number {
    let n = 0;
    for (const s of [...this.byId.values()]) {
      if (s.expiresAt <= now) {
        this.remove(s);
        n++;
      }
    }
    return n;
  }

  private remove(s: Session): void {
    this.byId.delete(s.id);
    const k = `${s.serverId}\0${s.userId}`;
    const ids = this.byUser.get(k);
    if (ids) {
      ids.delete(s.id);
      if (ids.size === 0) this.byUser.delete(k);
    }
  }
}
