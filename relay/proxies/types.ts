/** What every public-port publisher (tcp, udp) offers the relay. */
import type { ResolvedMapping } from '../mappings/resolve.js';
import type { Protocol } from '../store/store.js';
import type { Logger } from '../../shared/logging.js';
import type { RelayConfig } from '../../shared/config/types.js';
import type { SessionRegistry } from '../sessions/registry.js';
import type { LoopGuard } from './loop-guard.js';
import type { Observability } from '../observability.js';
import type { SealedRendezvous } from '../sealed/rendezvous.js';

export interface PublishProblem {
  port: number;
  code: string;
  message: string;
}

export interface PortPublisher {
  readonly protocol: Protocol;
  /** Makes the listeners of `serverId` match the mappings of this protocol. */
  sync(serverId: string, mappings: ResolvedMapping[]): Promise<PublishProblem[]>;
  /** Closes every listener of a server (its agent went offline or it was deleted). */
  closeServer(serverId: string): Promise<void>;
  /** Stops accepting everywhere. */
  close(): Promise<void>;
  /** Public ports listening now. */
  readonly listening: number;
  /** Client connections (tcp) or flows (udp) open now. */
  readonly connections: number;
  /** Per-server counters worth showing in the API (udp: flows, datagrams, drops), if the publisher keeps any. */
  serverCounters?(serverId: string): Record<string, number> | null;
}

export interface PublisherDeps {
  config: RelayConfig;
  logger: Logger;
  registry: SessionRegistry;
  loopGuard: LoopGuard;
  /** Replicas, health gate and usage statistics (relay/observability.ts). */
  obs?: Observability;
  /** Sealed data connections (relay/sealed/rendezvous.ts); absent: every stream rides the mux. */
  sealed?: SealedRendezvous;
}

export type PublisherFactory = (deps: PublisherDeps) => PortPublisher;
