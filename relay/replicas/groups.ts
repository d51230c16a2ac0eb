/**
 * Replica sets (docs/replicas.md): tcp mappings of one owner with the same
 * `group`, on any number of servers. The group's HTTPS host
 * `{owner}-{group}.{domain}` and every member's public TCP port spread new
 * requests / connections round-robin over the members that are eligible right
 * now: agent online, mapping served by its session, health not `unhealthy`.
 * Eligibility is evaluated per pick (a map lookup or two per member), so a
 * replica that goes offline or unhealthy stops getting new traffic as soon as
 * the relay knows — at most one health-check interval after it failed.
 */
import type { RelayConfig } from '../../shared/config/types.js';
import type { MappingRecord, ServerRecord, Store } from '../store/store.js';
import type { SessionRegistry } from '../sessions/registry.js';
import { normalizeHost } from '../vhost/router.js';

export interface ReplicaMember {
  serverId: string;
  mappingId: string;
  internalPort: number;
  externalPort: number;
  http: boolean;
  httpsToken: string | null;
  /** The mapping has an enabled health check. */
  healthChecked: boolean;
  createdAt: string;
}

export interface ReplicaSet {
  key: string;
  owner: string;
  group: string;
  /** `{owner}-{group}.{domain}` (served when at least one member is http). */
  host: string;
  /** Ordered by creation, so the round-robin order is stable. */
  members: ReplicaMember[];
  next: number;
}

export interface Picked {
  member: ReplicaMember;
}

export function groupKey(owner: string, group: string): string {
  return `${owner.toLowerCase()}\u0000${group.toLowerCase()}`;
}

export class ReplicaGroups {
  private readonly sets = new Map<string, ReplicaSet>();
  private readonly byHost = new Map<string, ReplicaSet>();
  private readonly generation = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly config: RelayConfig,
    private readonly registry: SessionRegistry,
  ) {}

  hostOf(owner: string, group: string): string {
    return `${owner}-${group}.${this.config.domain}`.toLowerCase();
  }

  async load(): Promise<void> {
    const [servers, mappings] = await Promise.all([this.store.listServers(), this.store.listAllMappings()]);
    const byId = new Map(servers.map((s) => [s.id, s]));
    for (const m of mappings) {
      const s = byId.get(m.serverId);
      if (s) this.add(s, m);
    }
    this.sort();
  }

  /** Re-reads one server's mappings (after any change to them, its owner, or its deletion). */
  async refresh(serverId: string): Promise<void> {
    const gen = (this.generation.get(serverId) ?? 0) + 1;
    this.generation.set(serverId, gen);
    const [server, mappings] = await Promise.all([this.store.getServer(serverId), this.store.listMappings(serverId)]);
    if (this.generation.get(serverId) !== gen) return;
    this.apply(serverId, server, mappings);
  }

  /** Removes a server's members (it is being deleted). */
  forget(serverId: string): void {
    this.generation.set(serverId, (this.generation.get(serverId) ?? 0) + 1);
    this.apply(serverId, undefined, []);
  }

  private apply(serverId: string, server: ServerRecord | undefined, mappings: MappingRecord[]): void {
    for (const set of this.sets.values()) set.members = set.members.filter((m) => m.serverId !== serverId);
    if (server) for (const m of mappings) this.add(server, m);
    for (const [k, set] of this.sets) {
      if (set.members.length === 0) {
        this.sets.delete(k);
        if (this.byHost.get(set.host) === set) this.byHost.delete(set.host);
      }
    }
    this.sort();
  }

  /** The replica set whose HTTPS host this is (only sets with an http member). */
  lookupHost(hostHeader: string | undefined): ReplicaSet | undefined {
    if (this.byHost.size === 0) return undefined;
    return this.byHost.get(normalizeHost(hostHeader));
  }

  /** The set a server's mapping belongs to. */
  setOf(owner: string, group: string | null): ReplicaSet | undefined {
    return group ? this.sets.get(groupKey(owner, group)) : undefined;
  }

  /** Sets with a member on this server. */
  setsOfServer(serverId: string): ReplicaSet[] {
    return [...this.sets.values()].filter((s) => s.members.some((m) => m.serverId === serverId));
  }

  /**
   * Why a member gets no traffic now, or null when it is eligible: it needs a
   * usable agent session serving the mapping, and one of its agents (a server
   * may have several) whose check of it has not failed. Moves no cursor.
   */
  ineligible(m: ReplicaMember): 'offline' | 'unhealthy' | null {
    const session = this.registry.primary(m.serverId);
    if (!session || !session.mappings.some((x) => x.id === m.mappingId)) return 'offline';
    if (!this.registry.passing(m.serverId, m.mappingId)) return 'unhealthy';
    return null;
  }

  /**
   * The next eligible member, round-robin; null when none is. `httpOnly`
   * skips members without an HTTPS endpoint. The caller picks the member
   * server's agent session (registry.get, once).
   */
  pick(set: ReplicaSet, httpOnly: boolean): Picked | null {
    const n = set.members.length;
    for (let i = 0; i < n; i++) {
      const idx = (set.next + i) % n;
      const member = set.members[idx]!;
      if (httpOnly && !member.http) continue;
      if (this.ineligible(member) !== null) continue;
      set.next = (idx + 1) % n;
      return { member };
    }
    return null;
  }

  private add(server: ServerRecord, m: MappingRecord): void {
    if (!m.group || m.protocol !== 'tcp') return;
    const k = groupKey(server.owner, m.group);
    let set = this.sets.get(k);
    if (!set) {
      set = { key: k, owner: server.owner, group: m.group.toLowerCase(), host: this.hostOf(server.owner, m.group), members: [], next: 0 };
      this.sets.set(k, set);
    }
    set.members.push({
      serverId: server.id,
      mappingId: m.id,
      internalPort: m.internalPort,
      externalPort: m.externalPort,
      http: m.http,
      httpsToken: m.httpsToken,
      healthChecked: m.healthCheck !== null && m.healthCheck.enabled !== false,
      createdAt: m.createdAt,
    });
    if (m.http) this.byHost.set(set.host, set);
  }

  private sort(): void {
    for (const set of this.sets.values()) {
      set.members.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.mappingId < b.mappingId ? -1 : 1));
      if (!set.members.some((m) => m.http) && this.byHost.get(set.host) === set) this.byHost.delete(set.host);
      if (set.next >= set.members.length) set.next = 0;
    }
  }
}
