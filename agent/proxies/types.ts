/** What a stream handler on the agent side gets. */
import type { MuxStream } from '../../shared/mux/index.js';
import type { Logger } from '../../shared/logging.js';
import type { MappingMsg, StreamHeader } from '../../proto/index.js';
import type net from 'node:net';
import type { SealedEngine } from '../../shared/sealed/engine.js';
import type { StreamSecrets } from '../../shared/sealed/keys.js';
import type { IdleDataConnections } from '../../shared/sealed/idle-pool.js';

/** What the agent needs for sealed data connections (when the relay asked for them in Welcome). */
export interface SealedDataPath {
  engine: SealedEngine;
  /** Secrets of stream `id`, from the tunnel's TLS session. Throws once that socket is gone, or PROTOCOL_ERROR for an id it gave before. */
  secrets(id: Buffer): StreamSecrets;
  /**
   * A new TCP connection to the relay's tunnel address, paused. At most
   * MAX_DIALING are set up at once (the relay counts them against its
   * per-address handshake cap until their preamble); in a burst the rest
   * wait for a slot, and get null after a short wait (that stream then
   * rides the mux). `done()` once the connection was answered or failed.
   */
  dial(): Promise<{ sock: net.Socket; done: () => void } | null>;
  /** Data connections between streams, by the id of the stream that opened them. */
  pool: IdleDataConnections;
}

export interface AgentStreamContext {
  localHost: string;
  serverId: string;
  logger: Logger;
  /** Connect timeout for local dials (ms). */
  dialTimeout: number;
  /** Set when the relay takes sealed data connections from this agent. */
  sealed?: SealedDataPath;
}

export type AgentStreamHandler = (stream: MuxStream, header: StreamHeader, mapping: MappingMsg, ctx: AgentStreamContext) => void;
