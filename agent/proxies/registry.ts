/** Stream handlers by stream kind (http streams are plain TCP on the agent side). */
import { StreamKind } from '../../proto/index.js';
import { tcpHandler } from './tcp.js';
import { udpHandler } from './udp.js';
import type { AgentStreamHandler } from './types.js';

export const agentProxies = {
  [StreamKind.TCP]: tcpHandler,
  [StreamKind.UDP]: udpHandler,
  // The web proxy's streams are plain TCP to the app on the agent side.
  [StreamKind.HTTP]: tcpHandler,
} satisfies Partial<Record<StreamKind, AgentStreamHandler>>;

export function handlerFor(kind: StreamKind): AgentStreamHandler | undefined {
  return (agentProxies as Partial<Record<StreamKind, AgentStreamHandler>>)[kind];
}
