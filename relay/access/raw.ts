/**
 * IP rules on raw TCP/UDP public ports: the server's `ip_whitelist` /
 * `blocked_ips` (PUT /proxy/access) and the mapping's, checked on the real
 * peer address of the connection or datagram. (`allowedIps` of PUT /proxy is
 * the HTTPS proxy's own list and does not apply here.) Policies are compiled
 * once per published mapping object and reused until the session's server or
 * mapping records are replaced (API change, agent reconnect).
 */
import type { Logger } from '../../shared/logging.js';
import type { ServerRecord } from '../store/store.js';
import { metrics } from '../metrics.js';
import { checkIp, type IpPolicy } from './ip-rules.js';
import { compileRawIpPolicy } from './policy.js';

interface Cached {
  access: ServerRecord['access'];
  policy: IpPolicy | null;
}

const compiled = new WeakMap<object, Cached>();
/** Refusals logged at most this often per server (the metric counts them all). */
const LOG_INTERVAL_MS = 5_000;
const lastLog = new Map<string, number>();

function policyOf(server: Pick<ServerRecord, 'access'>, mapping: { accessControl: Record<string, unknown> | null }): IpPolicy | null {
  const hit = compiled.get(mapping);
  if (hit !== undefined && hit.access === server.access) return hit.policy;
  const policy = compileRawIpPolicy(server, mapping);
  compiled.set(mapping, { access: server.access, policy });
  return policy;
}

/**
 * True when `clientIp` may use the raw port of `mapping`; refusals are counted
 * and logged (rate-limited) with the address, never silently.
 */
export function rawIpAllowed(
  server: Pick<ServerRecord, 'id' | 'access'>,
  mapping: { id: string; accessControl: Record<string, unknown> | null },
  clientIp: string,
  where: { protocol: 'tcp' | 'udp'; port: number; logger: Logger },
): boolean {
  const policy = policyOf(server, mapping);
  if (policy === null) return true;
  const v = checkIp(policy, clientIp);
  if (v.ok) return true;
  metrics.blocked.inc({ reason: v.reason === 'blocked' ? 'ip_blocked' : 'ip_not_allowed' });
  const now = Date.now();
  const key = `${server.id}|${where.protocol}`;
  if ((lastLog.get(key) ?? 0) + LOG_INTERVAL_MS <= now) {
    if (lastLog.size > 10_000) lastLog.clear();
    lastLog.set(key, now);
    where.logger.info(
      { server: server.id, port: where.port, protocol: where.protocol, ip: clientIp, code: 'FORBIDDEN' },
      `refused ${where.protocol} client ${clientIp} on public port ${where.port}: ${v.reason === 'blocked' ? 'its address is in blocked_ips' : `not in the ${v.scope === 'mapping' ? "mapping's" : "server's"} ip_whitelist`}`,
    );
  }
  return false;
}
