/**
 * Host -> mapping routing for the web proxy. A table of every published host
 * name, loaded from the store at start and refreshed per server when the
 * relay says it changed (mappings added or removed, proxy switched, agent
 * mappings reconciled). Lookups are synchronous map reads on the hot path; a
 * token host missing from the table is looked up once in the store (with a
 * short negative cache) so a missed refresh heals itself.
 */
import type { RelayConfig } from '../../shared/config/types.js';
import type { Logger } from '../../shared/logging.js';
import type { MappingRecord, ServerRecord, Store } from '../store/store.js';
import { httpsHosts } from '../mappings/urls.js';
import { compileHttpAccess, type HttpAccess } from '../access/policy.js';

/** What a host name leads to. */
export interface Route {
  serverId: string;
  mappingId: string;
  internalPort: number;
  /** Mapping name or null. */
  name: string | null;
  proxyEnabled: boolean;
  /**
   * Access control compiled from the server's allowedIps and access document
   * and the mapping's access_control (relay/access/policy.ts); null when
   * nothing is configured, so the proxy skips every access step.
   */
  access: HttpAccess | null;
}

const NEGATIVE_TTL_MS = 2_000;
const NEGATIVE_MAX = 10_000;

/** Lowercase host name without port or trailing dot; '' when unusable. */
export function normalizeHost(hostHeader: string | undefined): string {
  if (!hostHeader) return '';
  let h = hostHeader.trim().toLowerCase();
  if (h.startsWith('[')) return ''; // IPv6 literal: never one of ours
  const colon = h.indexOf(':');
  if (colon >= 0) h = h.slice(0, colon);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

export class HostRouter {
  private readonly hosts = new Map<string, Route>();
  private readonly byServer = new Map<string, string[]>();
  private readonly generation = new Map<string, number>();
  private readonly negative = new Map<string, number>();
  private readonly secureSuffix: string;

  constructor(
    private readonly store: Store,
    private readonly config: RelayConfig,
    private readonly logger: Logger,
  ) {
    this.secureSuffix = `.secure.${config.domain}`;
  }

  /** Number of host names routed now. */
  get size(): number {
    return this.hosts.size;
  }

  /** Builds the whole table from the store. */
  async load(): Promise<void> {
    const [servers, mappings] = await Promise.all([this.store.listServers(), this.store.listAllMappings()]);
    const byId = new Map(servers.map((s) => [s.id, s]));
    const grouped = new Map<string, MappingRecord[]>();
    for (const m of mappings) {
      const list = grouped.get(m.serverId);
      if (list) list.push(m);
      else grouped.set(m.serverId, [m]);
    }
    for (const [serverId, list] of grouped) {
      const server = byId.get(serverId);
      if (server) this.apply(serverId, server, list);
    }
  }

  /** Re-reads one server (call whenever its mappings or proxy settings change, or it is deleted). */
  async refresh(serverId: string): Promise<void> {
    const gen = (this.generation.get(serverId) ?? 0) + 1;
    this.generation.set(serverId, gen);
    const [server, mappings] = await Promise.all([this.store.getServer(serverId), this.store.listMappings(serverId)]);
    if (this.generation.get(serverId) !== gen) return; // a newer refresh is under way
    if (!server) {
      this.forget(serverId);
      this.generation.delete(serverId);
      return;
    }
    this.apply(serverId, server, mappings);
  }

  /** The route of a Host header value, from the table only. */
  lookup(hostHeader: string | undefined): Route | undefined {
    return this.hosts.get(normalizeHost(hostHeader));
  }

  /** Like lookup, but a token host missing from the table is checked in the store once. */
  async resolve(hostHeader: string | undefined): Promise<Route | undefined> {
    const host = normalizeHost(hostHeader);
    const hit = this.hosts.get(host);
    if (hit || !host.endsWith(this.secureSuffix)) return hit;
    const token = host.slice(0, -this.secureSuffix.length);
    if (!/^[a-z2-7]{16,64}$/.test(token)) return undefined;
    const now = Date.now();
    const neg = this.negative.get(host);
    if (neg !== undefined && neg > now) return undefined;
    const m = await this.store.findMappingByHttpsToken(token);
    if (m && m.http) {
      await this.refresh(m.serverId);
      const r = this.hosts.get(host);
      if (r) return r;
    }
    if (this.negative.size >= NEGATIVE_MAX) this.negative.clear();
    this.negative.set(host, now + NEGATIVE_TTL_MS);
    return undefined;
  }

  private forget(serverId: string): void {
    for (const h of this.byServer.get(serverId) ?? []) {
      if (this.hosts.get(h)?.serverId === serverId) this.hosts.delete(h);
    }
    this.byServer.delete(serverId);
  }

  private apply(serverId: string, server: ServerRecord, mappings: MappingRecord[]): void {
    this.forget(serverId);
    const names: string[] = [];
    for (const m of mappings) {
      if (!m.http) continue;
      const access = compileHttpAccess(server, m, (field, detail) => this.logger.warn({ server: serverId, mapping: m.id, field, entry: detail }, 'ignoring an unusable access-control entry'));
      const route: Route = { serverId, mappingId: m.id, internalPort: m.internalPort, name: m.name, proxyEnabled: server.proxyEnabled, access };
      for (const host of httpsHosts(this.config, server, m)) {
        const h = host.toLowerCase();
        const other = this.hosts.get(h);
        if (other && other.serverId !== serverId) {
          this.logger.warn({ host: h, server: serverId, other: other.serverId }, 'host name already routed to another server; keeping the first');
          continue;
        }
        this.hosts.set(h, route);
        this.negative.delete(h);
        names.push(h);
      }
    }
    if (names.length > 0) this.byServer.set(serverId, names);
  }
}
