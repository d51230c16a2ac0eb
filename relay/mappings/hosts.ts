/**
 * HTTPS host labels — `{owner}-{name}`, `{owner}-{server}-{port}` and
 * `{owner}-{group}` — join names that may themselves contain dashes, so two
 * owners can arrive at one label (owner `acme` + name `corp-web` and owner
 * `acme-corp` + name `web`). A label belongs to whoever holds it first: a
 * mapping or group that would take one another mapping or owner holds is
 * refused, so one owner can never be served under another's host name.
 */
import type { MappingRecord, ServerRecord, Store } from '../store/store.js';

export interface HostClaim {
  /** The host name's first label (before `.{domain}`). */
  label: string;
  owner: string;
  mappingId: string;
  /** A mapping's own host, or a replica group's shared host. */
  kind: 'mapping' | 'group';
}

/** The `{owner}-…` label an http mapping is served under (null for non-http mappings). */
export function mappingLabel(server: Pick<ServerRecord, 'id' | 'owner'>, m: Pick<MappingRecord, 'http' | 'name' | 'internalPort'>): string | null {
  if (!m.http) return null;
  return m.name ? `${server.owner}-${m.name}` : `${server.owner}-${server.id}-${m.internalPort}`;
}

/** A replica group's label (null without a group). */
export function groupLabel(owner: string, group: string | null): string | null {
  return group ? `${owner}-${group}` : null;
}

/** Every label held on this relay, by every owner. */
export async function hostClaims(store: Pick<Store, 'listServers' | 'listMappings'>): Promise<HostClaim[]> {
  const claims: HostClaim[] = [];
  for (const server of await store.listServers()) {
    for (const m of await store.listMappings(server.id)) {
      const own = mappingLabel(server, m);
      if (own) claims.push({ label: own, owner: server.owner, mappingId: m.id, kind: 'mapping' });
      const g = groupLabel(server.owner, m.group);
      if (g) claims.push({ label: g, owner: server.owner, mappingId: m.id, kind: 'group' });
    }
  }
  return claims;
}

/**
 * Who else holds `label`, for a mapping (`selfId`) of `owner` that wants it as its own host
 * (`kind` mapping) or as its group's host (`kind` group: the owner's other members of the same
 * group share it). Undefined when it is free.
 */
export function clashOf(claims: HostClaim[], label: string, kind: HostClaim['kind'], owner: string, selfId: string | undefined): HostClaim | undefined {
  return claims.find((c) => {
    if (c.label !== label) return false;
    if (c.mappingId === selfId) return false; // its own current claims, which the new ones replace
    if (kind === 'group' && c.kind === 'group' && c.owner === owner) return false; // the same group
    return true;
  });
}
