/** What a stream handler on the agent side gets. */
import type { MuxStream } from '../../shared/mux/index.js';
import type { Logger } from '../../shared/logging.js';
import type { MappingMsg, StreamHeader } from '../../proto/index.js';

export interface AgentStreamContext {
  localHost: string;
  serverId: string;
  logger: Logger;
  /** Connect timeout for local dials (ms). */
  dialTimeout: number;
}

export type AgentStreamHandler = (stream: MuxStream, header: StreamHeader, mapping: MappingMsg, ctx: AgentStreamContext) => void;
