/** Store records (camelCase) to API views (snake_case). Secrets and hashes never leave here. */
import type { ApiKeyRecord, MappingRecord, ServerRecord } from '../store/store.js';
import type { ServerStatus } from './types.js';

export function serverView(s: ServerRecord, status: ServerStatus) {
  return {
    id: s.id,
    owner: s.owner,
    ports: s.ports,
    udp: s.udp,
    proxy_enabled: s.proxyEnabled,
    created_at: s.createdAt,
    updated_at: s.updatedAt,
    online: status.online,
    agent_version: status.agentVersion,
    connected_since: status.connectedSince,
    agents_connected: status.agents,
  };
}

export function mappingSummary(m: MappingRecord) {
  return {
    id: m.id,
    internal_port: m.internalPort,
    external_port: m.externalPort,
    protocol: m.protocol,
    name: m.name,
    http: m.http,
    description: m.description,
    source: m.source,
  };
}

export function serverDetail(s: ServerRecord, status: ServerStatus, mappings: MappingRecord[], publicHostname: string) {
  return {
    ...serverView(s, status),
    remote_address: status.remoteAddress,
    open_streams: status.openStreams,
    transport: status.transport,
    udp_stats: status.udp
      ? {
          flows: status.udp.flows ?? 0,
          datagrams_in: status.udp.datagramsIn ?? 0,
          datagrams_out: status.udp.datagramsOut ?? 0,
          drops: status.udp.drops ?? 0,
          refused_by_cap: status.udp.refusedByCap ?? 0,
          expired_flows: status.udp.expiredFlows ?? 0,
          sealed_flows: status.udp.sealedFlows ?? 0,
          sealed_total: status.udp.sealedTotal ?? 0,
        }
      : null,
    public_hostname: publicHostname,
    mappings: mappings.map(mappingSummary),
  };
}

export function apiKeyView(k: ApiKeyRecord) {
  return { id: k.id, owner: k.owner, created_at: k.createdAt };
}
