/** What the management API needs from the relay that hosts it. */
import type pino from 'pino';
import type { RelayConfig } from '../../shared/config/types.js';
import type { Store } from '../store/store.js';
import type { Observability } from '../observability.js';

/** Live state of a server's agent connection. */
export interface ServerStatus {
  online: boolean;
  agentVersion: string | null;
  connectedSince: string | null;
  remoteAddress: string | null;
  /** Data streams (forwarded connections, flows, HTTP exchanges) open through the agent now. */
  openStreams: number;
  /** How the agent is connected: 'tls' or 'websocket' (null when offline). */
  transport: string | null;
  /** Agents connected with the server's token (replicas share it); the other fields describe the oldest. */
  agents: number;
  /** UDP counters (flows, datagramsIn/Out, drops, refusedByCap, expiredFlows, sealedFlows, sealedTotal), null before any UDP traffic. */
  udp: Record<string, number> | null;
}

/** Runtime hooks the relay implements; the API calls them after changing state. */
export interface RelayHooks {
  /** Picks a free block of `count` public ports (allocator + store); throws PorticoError POOL_EXHAUSTED. */
  allocatePorts(count: number): Promise<number[]>;
  /** The ports allocatePorts handed out are stored with their server (or creation failed): stop holding them. */
  releasePorts?(ports: number[]): void;
  serverStatus(id: string): ServerStatus;
  /** After create/update/udp/token/mapping change: push the new state to the agent. */
  serverChanged(id: string): Promise<void>;
  /** Before the record is deleted: free listeners, disconnect the agent. */
  serverDeleted(id: string): Promise<void>;
  /** After a token rotation: disconnect the agent holding the old token. */
  tokenRotated(id: string): Promise<void>;
  /** Health, replicas, usage statistics and access logs (relay/observability.ts); absent in API-only setups. */
  readonly obs?: Observability;
  /** After an endpoint user was deleted: forget its cached credentials and end its browser sessions (access control). */
  userDeleted?(id: string): Promise<void>;
}

export interface ApiDeps {
  store: Store;
  config: RelayConfig;
  /** Used as fastify's `loggerInstance`; Authorization headers are never logged. */
  logger: pino.Logger;
  /** sha256 hex of the admin key. */
  adminKeyHash: string;
  relay: RelayHooks;
}

/** Who is calling: the admin (sees everything) or a key scoped to one owner. */
export type Principal = { kind: 'admin'; keyId: string | null } | { kind: 'owner'; owner: string; keyId: string };
