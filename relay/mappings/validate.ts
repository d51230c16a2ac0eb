/**
 * The rules every explicit mapping obeys, whoever declares it (management API
 * or agent.yaml): platform ports, the server's block, uniqueness of external
 * port and name, the per-server limit, UDP switch. Returns the normalised
 * fields (external port auto-assigned when omitted) or throws PorticoError.
 */
import { PorticoError } from '../../shared/errors.js';
import type { RelayConfig } from '../../shared/config/types.js';
import type { MappingRecord, Protocol, ServerRecord } from '../store/store.js';

export const MAPPING_NAME_RE = /^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/;

export interface MappingInput {
  internal_port?: unknown;
  external_port?: unknown;
  protocol?: unknown;
  description?: unknown;
  name?: unknown;
  http?: unknown;
}

export interface MappingFields {
  internalPort: number;
  externalPort: number;
  protocol: Protocol;
  description: string;
  name: string | null;
  http: boolean;
}

export interface MappingContext {
  config: RelayConfig;
  server: ServerRecord;
  /** The server's current explicit mappings. */
  existing: MappingRecord[];
  /** Id of the mapping being updated (it does not conflict with itself). */
  selfId?: string;
  /** Finds the mapping (of any server) holding a name. */
  findByName(name: string): Promise<MappingRecord | undefined>;
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
    if (typeof input.name !== 'string' || !MAPPING_NAME_RE.test(input.name)) {
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
  return { internalPort, externalPort, protocol, description, name, http };
}

export function describeBlock(ports: number[]): string {
  if (ports.length === 0) return 'none';
  const contiguous = ports[ports.length - 1]! - ports[0]! === ports.length - 1;
  return contiguous ? `${ports[0]}-${ports[ports.length - 1]}` : ports.join(', ');
}
