/**
 * Turns a server's stored mappings into the forwarding table its agent and the
 * relay's public listeners use: explicit mappings first, then identity
 * (public P -> internal P) for every block port no explicit mapping took.
 */
import type { MappingRecord, Protocol, ServerRecord } from '../store/store.js';

export type MappingSource = 'identity' | 'agent' | 'api';

export interface ResolvedMapping {
  /** Store id, or `identity-<port>` (udp: `identity-udp-<port>`). */
  id: string;
  internalPort: number;
  externalPort: number;
  protocol: Protocol;
  name: string | null;
  http: boolean;
  httpsToken: string | null;
  description: string;
  source: MappingSource;
  healthCheck: Record<string, unknown> | null;
  accessControl: Record<string, unknown> | null;
  /** Replica group (docs/replicas.md), null for identity mappings. */
  group: string | null;
}

export function identityMappingId(port: number, protocol: Protocol): string {
  return protocol === 'tcp' ? `identity-${port}` : `identity-udp-${port}`;
}

export function resolveMappings(server: ServerRecord, records: MappingRecord[]): ResolvedMapping[] {
  const out: ResolvedMapping[] = [];
  const taken = { tcp: new Set<number>(), udp: new Set<number>() };
  for (const r of records) {
    if (r.protocol === 'udp' && !server.udp) continue;
    taken[r.protocol].add(r.externalPort);
    out.push({
      id: r.id,
      internalPort: r.internalPort,
      externalPort: r.externalPort,
      protocol: r.protocol,
      name: r.name,
      http: r.http,
      httpsToken: r.httpsToken,
      description: r.description,
      source: r.source,
      healthCheck: r.healthCheck,
      accessControl: r.accessControl,
      group: r.group ?? null,
    });
  }
  const protocols: Protocol[] = server.udp ? ['tcp', 'udp'] : ['tcp'];
  for (const protocol of protocols) {
    for (const port of server.ports) {
      if (taken[protocol].has(port)) continue;
      out.push({
        id: identityMappingId(port, protocol),
        internalPort: port,
        externalPort: port,
        protocol,
        name: null,
        http: false,
        httpsToken: null,
        description: 'identity',
        source: 'identity',
        healthCheck: null,
        accessControl: null,
        group: null,
      });
    }
  }
  return out;
}
