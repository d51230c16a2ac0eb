/**
 * The rules every explicit mapping obeys, whoever declares it (management API
 * or agent.yaml): platform ports, the server's block, uniqueness of the
 * internal port (per protocol), external port and name, the per-server
 * limit, UDP switch. Returns the normalised
 * fields (external port auto-assigned when omitted) or throws PorticoError.
 */
import ipaddr from 'ipaddr.js';
import { PorticoError } from '../../shared/errors.js';
import type { RelayConfig } from '../../shared/config/types.js';
import type { MappingRecord, Protocol, ServerRecord } from '../store/store.js';
import { checkAccessExtras } from '../access/validate.js';
import { isMappingName } from '../../shared/config/agent-config.js';
import { clashOf, groupLabel, mappingLabel, type HostClaim } from './hosts.js';


export interface MappingInput {
  internal_port?: unknown;
  external_port?: unknown;
  protocol?: unknown;
  description?: unknown;
  name?: unknown;
  http?: unknown;
  /** Replica group (docs/replicas.md); tcp mappings only. */
  group?: unknown;
}

/** The normalised fields a mapping check returns: exactly those columns of the stored record. */
export type MappingFields = Pick<MappingRecord, 'internalPort' | 'externalPort' | 'protocol' | 'description' | 'name' | 'http' | 'group'>;

export interface MappingContext {
  config: RelayConfig;
  server: ServerRecord;
  /** The server's current explicit mappings. */
  existing: MappingRecord[];
  /** Id of the mapping being updated (it does not conflict with itself). */
  selfId?: string;
  /** Finds the mapping (of any server) holding a name. */
  findByName(name: string): Promise<MappingRecord | undefined>;
  /** Every HTTPS host label held on the relay (hosts.ts); read only when a mapping's labels change. */
  hostClaims(): Promise<HostClaim[]>;
}

function port(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new PorticoError('VALIDATION_FAILED', `${field} must be an integer from 1 to 65535 (got ${JSON.stringify(value)})`, { field });
  }
  return value;
}

export async function checkMapping(input: MappingInput, ctx: MappingContext): Promise<MappingFields> {
  const { config, server } = ctx;
  const others = ctx.existing.filter((m) => m.id !== ctx.selfId);
  const internalPort = port(input.internal_port, 'internal_port');
  const protocol = (input.protocol ?? 'tcp') as Protocol;
  if (protocol !== 'tcp' && protocol !== 'udp') {
    throw new PorticoError('VALIDATION_FAILED', `protocol must be "tcp" or "udp" (got ${JSON.stringify(input.protocol)})`, { field: 'protocol' });
  }
  const description = input.description === undefined || input.description === null ? '' : input.description;
  if (typeof description !== 'string' || description.length > 200) {
    throw new PorticoError('VALIDATION_FAILED', 'description must be a string of at most 200 characters', { field: 'description' });
  }
  const http = input.http === undefined || input.http === null ? false : input.http;
  if (typeof http !== 'boolean') throw new PorticoError('VALIDATION_FAILED', 'http must be true or false', { field: 'http' });
  if (http && protocol !== 'tcp') throw new PorticoError('VALIDATION_FAILED', 'http mappings must use protocol tcp', { field: 'http' });
  let name: string | null = null;
  if (input.name !== undefined && input.name !== null && input.name !== '') {
    if (!isMappingName(input.name)) {
      throw new PorticoError('VALIDATION_FAILED', 'name must be 1-40 lowercase letters, digits or dashes, not starting or ending with a dash', { field: 'name' });
    }
    name = input.name;
  }
  if (config.mappings.reservedInternalPorts.includes(internalPort)) {
    throw new PorticoError('PORT_RESERVED', `internal port ${internalPort} is a platform port and cannot be custom-mapped (reserved: ${config.mappings.reservedInternalPorts.join(', ')})`, {
      field: 'internal_port',
      reserved_ports: config.mappings.reservedInternalPorts,
    });
  }
  if (protocol === 'udp' && !server.udp) {
    throw new PorticoError('UDP_NOT_ENABLED', `UDP is not enabled on server ${server.id}; enable it with PUT /v1/servers/${server.id}/udp`, { field: 'protocol' });
  }
  if (others.length >= config.mappings.maxPerServer) {
    throw new PorticoError('MAPPING_LIMIT_REACHED', `server ${server.id} already has ${others.length} mappings (limit ${config.mappings.maxPerServer})`, {
      limit: config.mappings.maxPerServer,
    });
  }
  const sameInternal = others.find((m) => m.protocol === protocol && m.internalPort === internalPort);
  if (sameInternal) {
    throw new PorticoError('PORT_ALREADY_MAPPED', `Internal port ${internalPort} is already mapped (${protocol}, external port ${sameInternal.externalPort}${sameInternal.description ? `, ${sameInternal.description}` : ''})`, {
      field: 'internal_port',
      internal_port: internalPort,
      existing_mapping_id: sameInternal.id,
      existing_description: sameInternal.description,
      suggestion: 'Use a different internal port or update the existing mapping',
    });
  }
  const used = new Map(others.filter((m) => m.protocol === protocol).map((m) => [m.externalPort, m]));
  let externalPort: number;
  if (input.external_port === undefined || input.external_port === null || input.external_port === 0) {
    const free = server.ports.find((p) => !used.has(p) && !config.ports.reserved.includes(p));
    if (free === undefined) {
      throw new PorticoError('MAPPING_LIMIT_REACHED', `every port of server ${server.id}'s block is already mapped for ${protocol}`, { field: 'external_port' });
    }
    externalPort = free;
  } else {
    externalPort = port(input.external_port, 'external_port');
    if (config.ports.reserved.includes(externalPort)) {
      throw new PorticoError('PORT_RESERVED', `external port ${externalPort} is reserved on this relay`, { field: 'external_port' });
    }
    if (!server.ports.includes(externalPort)) {
      throw new PorticoError('PORT_OUT_OF_BLOCK', `external port ${externalPort} is not in server ${server.id}'s block (${describeBlock(server.ports)})`, {
        field: 'external_port',
        allowed_ports: server.ports,
      });
    }
    const holder = used.get(externalPort);
    if (holder) {
      const suggestion = server.ports.find((p) => !used.has(p) && !config.ports.reserved.includes(p));
      throw new PorticoError('PORT_ALREADY_MAPPED', `external port ${externalPort} is already mapped (${holder.description || holder.id})`, {
        field: 'external_port',
        existing_mapping_id: holder.id,
        existing_description: holder.description,
        suggestion: suggestion === undefined ? 'every port of the block is mapped; remove a mapping first' : `use external port ${suggestion}, or omit external_port to auto-assign`,
      });
    }
  }
  if (name) {
    const holder = await ctx.findByName(name);
    if (holder && holder.id !== ctx.selfId) {
      throw new PorticoError('NAME_TAKEN', `mapping name "${name}" is already in use on this relay`, { field: 'name' });
    }
  }
  const group = checkGroup(input.group, protocol);
  await checkHosts(ctx, { http, name, internalPort, group });
  return { internalPort, externalPort, protocol, description, name, http, group };
}

/** Refuses host labels another mapping or owner holds (hosts.ts); skipped when the labels did not change. */
async function checkHosts(ctx: MappingContext, m: Pick<MappingRecord, 'http' | 'name' | 'internalPort' | 'group'>): Promise<void> {
  const { server, config } = ctx;
  const own = mappingLabel(server, m);
  const grp = groupLabel(server.owner, m.group);
  const before = ctx.existing.find((x) => x.id === ctx.selfId);
  if (before && mappingLabel(server, before) === own && groupLabel(server.owner, before.group) === grp) return;
  if (!own && !grp) return;
  const claims = await ctx.hostClaims();
  if (own) {
    const clash = clashOf(claims, own, 'mapping', server.owner, ctx.selfId);
    if (clash) {
      const field = m.name ? 'name' : 'internal_port';
      const hint = m.name ? 'choose another name' : 'give the mapping a name';
      throw new PorticoError('NAME_TAKEN', `the HTTPS host ${own}.${config.domain} is already in use on this relay; ${hint}`, { field });
    }
  }
  if (grp && clashOf(claims, grp, 'group', server.owner, ctx.selfId)) {
    throw new PorticoError('NAME_TAKEN', `the HTTPS host ${grp}.${config.domain} is already in use on this relay; choose another group name`, { field: 'group' });
  }
  if (own && grp && own === grp) {
    throw new PorticoError('NAME_TAKEN', `the mapping's own host and its group's host would both be ${own}.${config.domain}; choose another group name`, { field: 'group' });
  }
}

/** A replica group name: a DNS label like mapping names (it becomes https://{owner}-{group}.{domain}); tcp only. */
export function checkGroup(value: unknown, protocol: Protocol): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (!isMappingName(value)) {
    throw new PorticoError('VALIDATION_FAILED', 'group must be 1-40 lowercase letters, digits or dashes, not starting or ending with a dash', { field: 'group' });
  }
  if (protocol !== 'tcp') throw new PorticoError('VALIDATION_FAILED', 'replica groups are for tcp mappings (HTTPS and raw TCP); udp flows are not balanced', { field: 'group' });
  return value;
}

export function describeBlock(ports: number[]): string {
  if (ports.length === 0) return 'none';
  const contiguous = ports[ports.length - 1]! - ports[0]! === ports.length - 1;
  return contiguous ? `${ports[0]}-${ports[ports.length - 1]}` : ports.join(', ');
}

// ---- health checks, access control and IP lists (API-declared settings) ----

/** Ranges of health-check settings; the API's JSON schema publishes the same numbers. */
export const HEALTH_LIMITS = {
  intervalSeconds: { min: 1, max: 3600, default: 30 },
  timeoutSeconds: { min: 1, max: 300, default: 10 },
  expectedStatus: { min: 100, max: 599, default: 200 },
  retries: { min: 0, max: 10, default: 3 },
  pathMaxLength: 2048,
} as const;

/** Longest IP/CIDR list accepted in one field. */
export const IP_LIST_MAX = 1000;

/**
 * A health check as stored and sent to the agent: the camelCase fields of the
 * wire `HealthCheck` message (the session casts the record to it), defaults filled.
 */
export interface HealthCheckRecord {
  [key: string]: unknown;
  enabled: boolean;
  /** Empty = TCP connect check. */
  path: string;
  intervalSeconds: number;
  timeoutSeconds: number;
  expectedStatus: number;
  retries: number;
}

function intIn(value: unknown, field: string, lim: { min: number; max: number }): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < lim.min || value > lim.max) {
    throw new PorticoError('VALIDATION_FAILED', `${field} must be an integer from ${lim.min} to ${lim.max} (got ${JSON.stringify(value)})`, { field });
  }
  return value;
}

/**
 * Validates an API `health_check` object (snake_case) and returns its stored
 * form; null/undefined means "no health check".
 */
export function checkHealthCheck(input: unknown, field = 'health_check'): HealthCheckRecord | null {
  if (input === undefined || input === null) return null;
  if (typeof input !== 'object' || Array.isArray(input)) throw new PorticoError('VALIDATION_FAILED', `${field} must be an object`, { field });
  const h = input as Record<string, unknown>;
  const enabled = h.enabled === undefined ? true : h.enabled;
  if (typeof enabled !== 'boolean') throw new PorticoError('VALIDATION_FAILED', `${field}.enabled must be true or false`, { field: `${field}.enabled` });
  const path = h.path === undefined || h.path === null ? '' : h.path;
  if (typeof path !== 'string' || (path !== '' && !path.startsWith('/')) || path.length > HEALTH_LIMITS.pathMaxLength || /[\s\u0000-\u001f\u007f]/.test(path)) {
    throw new PorticoError('VALIDATION_FAILED', `${field}.path must be empty (TCP connect check) or an HTTP path starting with / without spaces`, { field: `${field}.path` });
  }
  const L = HEALTH_LIMITS;
  const intervalSeconds = h.interval_seconds === undefined ? L.intervalSeconds.default : intIn(h.interval_seconds, `${field}.interval_seconds`, L.intervalSeconds);
  const timeoutSeconds =
    h.timeout_seconds === undefined ? Math.min(L.timeoutSeconds.default, intervalSeconds) : intIn(h.timeout_seconds, `${field}.timeout_seconds`, L.timeoutSeconds);
  if (timeoutSeconds > intervalSeconds) {
    throw new PorticoError('VALIDATION_FAILED', `${field}.timeout_seconds (${timeoutSeconds}) must not exceed interval_seconds (${intervalSeconds})`, {
      field: `${field}.timeout_seconds`,
    });
  }
  const expectedStatus = h.expected_status === undefined ? L.expectedStatus.default : intIn(h.expected_status, `${field}.expected_status`, L.expectedStatus);
  const retries = h.retries === undefined ? L.retries.default : intIn(h.retries, `${field}.retries`, L.retries);
  return { enabled, path, intervalSeconds, timeoutSeconds, expectedStatus, retries };
}

/** The API (snake_case) view of a stored health check. */
export function healthCheckView(h: Record<string, unknown> | null): Record<string, unknown> | null {
  if (!h) return null;
  return {
    enabled: h.enabled ?? true,
    path: h.path ?? '',
    interval_seconds: h.intervalSeconds ?? HEALTH_LIMITS.intervalSeconds.default,
    timeout_seconds: h.timeoutSeconds ?? HEALTH_LIMITS.timeoutSeconds.default,
    expected_status: h.expectedStatus ?? HEALTH_LIMITS.expectedStatus.default,
    retries: h.retries ?? HEALTH_LIMITS.retries.default,
  };
}

/**
 * One IPv4/IPv6 address or CIDR block, strictly: dotted-quad IPv4, IPv6
 * without a zone id, prefix within the family's length. Returns the canonical
 * text (`2001:db8::/32`); throws VALIDATION_FAILED naming `field`.
 */
export function checkIpOrCidr(value: unknown, field: string): string {
  const bad = () =>
    new PorticoError('VALIDATION_FAILED', `${field} must be an IPv4/IPv6 address or CIDR block such as 203.0.113.0/24 (got ${JSON.stringify(value)})`, { field });
  if (typeof value !== 'string' || value.length === 0 || value.length > 64 || value.includes('%')) throw bad();
  const slash = value.indexOf('/');
  const addrText = slash < 0 ? value : value.slice(0, slash);
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  if (ipaddr.IPv4.isValidFourPartDecimal(addrText)) addr = ipaddr.IPv4.parse(addrText);
  else if (addrText.includes(':') && ipaddr.IPv6.isValid(addrText)) addr = ipaddr.IPv6.parse(addrText);
  else throw bad();
  if (slash < 0) return addr.toString();
  const prefixText = value.slice(slash + 1);
  const max = addr.kind() === 'ipv4' ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) throw bad();
  return `${addr.toString()}/${Number(prefixText)}`;
}

/** A list of addresses/CIDRs (each checked by checkIpOrCidr), duplicates dropped. */
export function checkIpList(value: unknown, field: string): string[] {
  if (!Array.isArray(value)) throw new PorticoError('VALIDATION_FAILED', `${field} must be an array of IP addresses or CIDR blocks`, { field });
  if (value.length > IP_LIST_MAX) throw new PorticoError('VALIDATION_FAILED', `${field} may hold at most ${IP_LIST_MAX} entries`, { field });
  return [...new Set(value.map((v, i) => checkIpOrCidr(v, `${field}.${i}`)))];
}

/** Keys of an access-control document that hold IP lists. */
const IP_LIST_KEYS = ['ip_whitelist', 'blocked_ips'] as const;

/**
 * The semantic checks of an access-control document (per mapping or
 * server-wide), after its JSON-schema shape check: IP lists are real
 * addresses/CIDRs (canonicalised). Returns the document to store. `field`
 * prefixes error fields ('' when the document is the whole request body).
 */
export function checkAccessControl(input: unknown, field = 'access_control'): Record<string, unknown> | null {
  if (input === undefined || input === null) return null;
  if (typeof input !== 'object' || Array.isArray(input)) throw new PorticoError('VALIDATION_FAILED', `${field || 'body'} must be an object`, { field: field || 'body' });
  const doc: Record<string, unknown> = { ...(input as Record<string, unknown>) };
  for (const key of IP_LIST_KEYS) if (doc[key] !== undefined) doc[key] = checkIpList(doc[key], field ? `${field}.${key}` : key);
  checkAccessExtras(doc, field);
  return doc;
}
