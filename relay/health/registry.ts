/**
 * Health of mappings as their agents report it (HealthReport on the control
 * channel; the agent runs the checks, agent/health/checker.ts). In memory
 * only: after a relay restart or an agent reconnect the agent reports again
 * at once. A mapping's state is `unknown` until its first result, when its
 * agent is offline, and when its check is disabled. This is the API's and
 * the metrics' view (from the server's oldest agent); routing between agents
 * reads each agent session's own results (relay/sessions/registry.ts).
 */
import type { HealthStateMsg } from '../../proto/index.js';
import type { ResolvedMapping } from '../mappings/resolve.js';
import { metrics } from '../metrics.js';

export type HealthStatus = 'healthy' | 'unhealthy' | 'unknown';

export interface HealthRecord {
  serverId: string;
  mappingId: string;
  status: HealthStatus;
  /** ISO time of the agent's last check, null before the first. */
  lastCheck: string | null;
  consecutiveFailures: number;
  detail: string;
}

const GAUGE: Record<HealthStatus, number> = { healthy: 1, unhealthy: 0, unknown: -1 };

export function healthEnabled(m: Pick<ResolvedMapping, 'healthCheck'>): boolean {
  const hc = m.healthCheck;
  return hc !== null && hc !== undefined && hc.enabled !== false;
}

export interface HealthChange {
  record: HealthRecord;
  previous: HealthStatus;
}

export class HealthRegistry {
  private readonly byMapping = new Map<string, HealthRecord>();
  /** Called on every status change (the relay logs it). */
  onChange: ((c: HealthChange) => void) | null = null;

  /** Applies an agent's report; ids the server does not serve with an enabled check are ignored. */
  report(serverId: string, mappings: readonly ResolvedMapping[], states: readonly HealthStateMsg[]): number {
    let applied = 0;
    for (const s of states) {
      const m = mappings.find((x) => x.id === s.mappingId);
      if (!m || !healthEnabled(m)) continue;
      const status: HealthStatus = s.status === 'healthy' || s.status === 'unhealthy' ? s.status : 'unknown';
      this.set({
        serverId,
        mappingId: m.id,
        status,
        lastCheck: s.lastCheckMs ? new Date(s.lastCheckMs).toISOString() : null,
        consecutiveFailures: s.consecutiveFailures ?? 0,
        detail: (s.detail ?? '').slice(0, 300),
      });
      applied++;
    }
    return applied;
  }

  /** The agent of a server left: nothing is known about its mappings until it reports again. */
  offline(serverId: string): void {
    for (const r of [...this.byMapping.values()]) {
      if (r.serverId === serverId && r.status !== 'unknown') this.set({ ...r, status: 'unknown', detail: 'agent offline' });
    }
  }

  /** Drops the state of mappings that are gone or no longer checked (after a mapping change). */
  retain(serverId: string, mappings: readonly ResolvedMapping[]): void {
    const keep = new Set(mappings.filter(healthEnabled).map((m) => m.id));
    for (const r of [...this.byMapping.values()]) {
      if (r.serverId === serverId && !keep.has(r.mappingId)) {
        this.byMapping.delete(r.mappingId);
        metrics.health.remove({ server: serverId, mapping: r.mappingId });
      }
    }
  }

  get(mappingId: string): HealthRecord | undefined {
    return this.byMapping.get(mappingId);
  }

  private set(r: HealthRecord): void {
    const prev = this.byMapping.get(r.mappingId);
    this.byMapping.set(r.mappingId, r);
    metrics.health.set({ server: r.serverId, mapping: r.mappingId }, GAUGE[r.status]);
    const previous = prev?.status ?? 'unknown';
    if (previous !== r.status) this.onChange?.({ record: r, previous });
  }
}
