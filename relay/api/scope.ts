/** Owner scoping: what a principal may see. Other owners' servers are reported as missing. */
import { PorticoError } from '../../shared/errors.js';
import type { ServerRecord, Store } from '../store/store.js';
import type { Principal } from './types.js';

export function canSee(principal: Principal, server: ServerRecord): boolean {
  return principal.kind === 'admin' || server.owner === principal.owner;
}

/** The server `id` if it exists and the principal may see it; NOT_FOUND otherwise (existence never leaks). */
export async function loadServer(store: Store, principal: Principal, id: string): Promise<ServerRecord> {
  const server = await store.getServer(id);
  if (!server || !canSee(principal, server)) throw new PorticoError('NOT_FOUND', `server ${id} not found`, { id });
  return server;
}

/** The owner filter for list calls: owner-scoped keys always see only their own. */
export function ownerFilter(principal: Principal, requested?: string): string | undefined {
  return principal.kind === 'owner' ? principal.owner : requested;
}
