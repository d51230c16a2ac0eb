/**
 * Applies the mappings an agent declares in its agent.yaml (sent in Hello) to
 * the store: each is checked by the same rules as API mappings; matches of
 * earlier declarations are updated in place (ids, HTTPS tokens and so URLs stay
 * stable), new ones created, ones no longer declared removed. Returns the
 * declarations that were refused, with the reason.
 */
import { PorticoError, errorCodeToWire } from '../../shared/errors.js';
import type { RelayConfig } from '../../shared/config/types.js';
import { Protocol as WireProtocol, type ErrorMsg, type MappingSpec } from '../../proto/index.js';
import { hostClaims } from './hosts.js';
import type { MappingRecord, ServerRecord, Store } from '../store/store.js';
import { checkMapping } from './validate.js';
import { newHttpsToken, newMappingId } from './ids.js';

export async function reconcileAgentMappings(store: Store, config: RelayConfig, server: ServerRecord, specs: MappingSpec[]): Promise<ErrorMsg[]> {
  const existing = await store.listMappings(server.id);
  const agentOwned = existing.filter((m) => m.source === 'agent');
  const matched = new Map<MappingSpec, MappingRecord>();
  const used = new Set<string>();
  for (const spec of specs) {
    const protocol = spec.protocol === WireProtocol.UDP ? 'udp' : 'tcp';
    const m = agentOwned.find(
      (r) => !used.has(r.id) && r.internalPort === spec.internalPort && r.protocol === protocol && (spec.name ? r.name === spec.name : true),
    );
    if (m) {
      matched.set(spec, m);
      used.add(m.id);
    }
  }
  for (const r of agentOwned) if (!used.has(r.id)) await store.deleteMapping(server.id, r.id);
  let current = existing.filter((m) => m.source !== 'agent' || used.has(m.id));
  const rejected: ErrorMsg[] = [];
  for (const spec of specs) {
    const match = matched.get(spec);
    const input = {
      internal_port: spec.internalPort,
      external_port: spec.externalPort || match?.externalPort || undefined,
      protocol: spec.protocol === WireProtocol.UDP ? 'udp' : 'tcp',
      description: spec.description || (match ? match.description : `agent: port ${spec.internalPort}`),
      name: spec.name || null,
      http: Boolean(spec.http),
      group: spec.group || null,
    };
    try {
      const fields = await checkMapping(input, {
        config,
        server,
        existing: current,
        selfId: match?.id,
        findByName: (name) => store.findMappingByName(name),
          hostClaims: () => hostClaims(store),
      });
      const httpsToken = fields.http ? (match?.httpsToken ?? newHttpsToken()) : null;
      let rec: MappingRecord;
      if (match) {
        rec = await store.updateMapping(server.id, match.id, { ...fields, httpsToken });
      } else {
        rec = await store.createMapping({
          id: newMappingId(),
          serverId: server.id,
          ...fields,
          httpsToken,
          source: 'agent',
          healthCheck: null,
          accessControl: null,
        });
      }
      current = [...current.filter((m) => m.id !== rec.id), rec];
    } catch (err) {
      const e = err instanceof PorticoError ? err : new PorticoError('INTERNAL', 'could not apply mapping');
      rejected.push({
        code: errorCodeToWire(e.code),
        message: `mapping internal_port ${spec.internalPort}: ${e.message}`,
        detailsJson: JSON.stringify({ ...(e.details ?? {}), internal_port: spec.internalPort, code: e.code }),
      });
    }
  }
  return rejected;
}
