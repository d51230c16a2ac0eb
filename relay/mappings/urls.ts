/** The public URLs of a mapping: raw tcp://host:port and, for http mappings, the HTTPS ones. */
import type { RelayConfig } from '../../shared/config/types.js';
import type { ServerRecord } from '../store/store.js';
import type { ResolvedMapping } from './resolve.js';

export function rawUrl(config: RelayConfig, m: Pick<ResolvedMapping, 'externalPort' | 'protocol'>): string {
  return `${m.protocol}://${config.publicHostname}:${m.externalPort}`;
}

function httpsSuffix(config: RelayConfig): string {
  return config.https.listen.port === 443 ? '' : `:${config.https.listen.port}`;
}

/** Host names (no scheme, no port) under which an http mapping is served, most specific first. */
export function httpsHosts(config: RelayConfig, server: Pick<ServerRecord, 'id' | 'owner'>, m: Pick<ResolvedMapping, 'http' | 'httpsToken' | 'name' | 'internalPort'>): string[] {
  if (!m.http) return [];
  const hosts: string[] = [];
  if (m.httpsToken) hosts.push(`${m.httpsToken}.secure.${config.domain}`);
  if (m.name) hosts.push(`${server.owner}-${m.name}.${config.domain}`);
  else hosts.push(`${server.owner}-${server.id}-${m.internalPort}.${config.domain}`);
  return hosts;
}

export function httpsUrls(config: RelayConfig, server: Pick<ServerRecord, 'id' | 'owner'>, m: Pick<ResolvedMapping, 'http' | 'httpsToken' | 'name' | 'internalPort'>): string[] {
  const suffix = httpsSuffix(config);
  return httpsHosts(config, server, m).map((h) => `https://${h}${suffix}`);
}
