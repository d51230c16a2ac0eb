/**
 * Turns a fresh transport connection into an authenticated AgentSession:
 * mux up, first stream = control, Hello within the handshake timeout, token
 * and version checked, agent.yaml mappings applied, Welcome back. Anything
 * wrong ends only this connection, with an Error naming the reason.
 */
import { randomUUID } from 'node:crypto';
import { TLSSocket } from 'node:tls';
import { streamSecrets } from '../../shared/sealed/keys.js';
import type { Duplex } from 'node:stream';
import { PorticoError, isPorticoError } from '../../shared/errors.js';
import { ControlChannel, errorBody } from '../../shared/control/channel.js';
import { encodeFrame } from '../../shared/framing/length-prefixed.js';
import { readFrame } from '../../shared/framing/read-frame.js';
import { Session as MuxSession, type MuxStream } from '../../shared/mux/index.js';
import type { PeerInfo } from '../../shared/transport/transport.js';
import type { Logger } from '../../shared/logging.js';
import { bindCovers, isLocalAddress } from '../../shared/util/net.js';
import { EnvelopeCodec, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, envelopeKind, type Envelope, type ErrorMsg, type Hello, type MappingSpec } from '../../proto/index.js';
import type { RelayConfig } from '../../shared/config/types.js';
import type { ServerRecord, Store } from '../store/store.js';
import { parseAgentToken, verifySecret } from '../auth/tokens.js';
import { reconcileAgentMappings } from '../mappings/reconcile.js';
import { resolveMappings } from '../mappings/resolve.js';
import { AgentSession } from './agent-session.js';

export interface AcceptDeps {
  config: RelayConfig;
  logger: Logger;
  store: Store;
  relayVersion: string;
  /** Called once the session is authenticated, before Welcome is sent (publish listeners here). */
  onAuthenticated(session: AgentSession): Promise<void>;
  /** False while draining: new agents are turned away. */
  accepting(): boolean;
  /** Usable agent sessions the server has now (replica agents share its token). */
  peers?(serverId: string): number;
  /** Pings the server's agents, closes those that stay silent; resolves with how many are alive. */
  confirmPeers?(serverId: string): Promise<number>;
  /**
   * Per server, the agent.yaml mappings its connected agents declared (as a
   * key) and what the relay refused of them: an agent joining others must
   * declare the same, and then changes nothing in the store.
   */
  declarations?: Map<string, { key: string; rejected: ErrorMsg[] }>;
  /** Runs `fn` after every earlier call for the same server has finished (one handshake per server at a time). */
  serialize?<T>(serverId: string, fn: () => Promise<T>): Promise<T>;
  /** The relay takes sealed data connections (tunnel.sealed_data on and the engine built). */
  sealed?: boolean;
}

const runNow = <T>(_key: string, fn: () => Promise<T>): Promise<T> => fn();

/** A declaration's identity: its mappings, normalised and sorted (order in agent.yaml does not matter). */
export function declarationKey(specs: readonly MappingSpec[]): string {
  const norm = specs.map((m) => [m.protocol ?? 0, m.internalPort, m.externalPort || 0, m.name || '', Boolean(m.http), m.description || '', m.group || '']);
  return JSON.stringify(norm.sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)));
}

export function acceptAgent(conn: Duplex, peer: PeerInfo, deps: AcceptDeps): void {
  const { config, logger } = deps;
  const log = logger.child({ peer: `${peer.remoteAddress}:${peer.remotePort}` });
  let control: MuxStream | null = null;
  const mux = new MuxSession(conn, {
    isClient: false,
    maxStreamWindow: config.tunnel.streamWindow,
    keepaliveInterval: config.tunnel.keepaliveInterval,
    keepaliveTimeout: config.tunnel.keepaliveTimeout,
    onStream: (s) => {
      if (control) {
        // Agents never open data streams; refuse politely.
        s.destroy();
        return;
      }
      control = s;
      // Errors surface through the session's close; never let them throw.
      s.on('error', () => undefined);
      clearTimeout(noStream);
      void handshake(s);
    },
  });
  mux.on('error', () => undefined);
  mux.once('close', (err?: Error) => {
    clearTimeout(noStream);
    if (err && !control) log.debug({ err: err.message }, 'agent connection closed before handshake');
  });
  const noStream = setTimeout(() => mux.destroy(new PorticoError('TIMEOUT', 'no control stream within the handshake timeout')), config.tunnel.handshakeTimeout);
  noStream.unref();

  const refuse = (stream: MuxStream, err: PorticoError, replyTo: number) => {
    log.warn({ code: err.code }, `agent refused: ${err.message}`);
    stream.write(encodeFrame(EnvelopeCodec.encode({ ...errorBody(err), id: 0, replyTo })));
    stream.end();
    mux.goAway();
    const t = setTimeout(() => mux.destroy(), 500);
    t.unref();
    mux.once('close', () => clearTimeout(t));
  };

  const handshake = async (stream: MuxStream) => {
    let env: Envelope;
    try {
      const buf = await readFrame(stream, config.tunnel.handshakeTimeout);
      try {
        env = EnvelopeCodec.decode(buf);
      } catch (err) {
        throw new PorticoError('PROTOCOL_ERROR', `malformed hello: ${(err as Error).message}`);
      }
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'agent handshake failed');
      mux.destroy();
      return;
    }
    const replyTo = env.id ?? 0;
    try {
      if (envelopeKind(env) !== 'hello' || !('hello' in env)) throw new PorticoError('PROTOCOL_ERROR', 'the first control message must be hello');
      if (!deps.accepting()) throw new PorticoError('SHUTTING_DOWN', 'relay is shutting down; retry shortly');
      const hello = env.hello;
      const version = negotiate(hello);
      const authed = await authenticate(hello, deps.store);
      const specs = hello.mappings ?? [];
      // One handshake per server at a time from here to registration: the declaration check, the
      // reconcile and online() see what the previous one left (concurrent agents of one server).
      await (deps.serialize ?? runNow)(authed.id, async () => {
        const stillWanted = () => {
          if (!deps.accepting()) throw new PorticoError('SHUTTING_DOWN', 'relay is shutting down; retry shortly');
          if (mux.closed) throw new PorticoError('TIMEOUT', 'the agent went away during the handshake');
        };
        stillWanted();
        const key = declarationKey(specs);
        const applied = deps.declarations?.get(authed.id);
        const peers = deps.peers?.(authed.id) ?? 0;
        // Joining the server's other agents: the same agent.yaml mappings, or refused (it would take
        // theirs away) — unless those agents turn out to be gone (a restart with a changed agent.yaml).
        if (peers > 0 && applied !== undefined && applied.key !== key) {
          const alive = (await deps.confirmPeers?.(authed.id)) ?? peers;
          stillWanted();
          if (alive > 0) {
            throw new PorticoError(
              'CONFIG_INVALID',
              `server ${authed.id} already has ${alive} agent(s) connected whose agent.yaml declares different mappings; run every agent of a server with the same mappings, or stop the others first`,
              { server_id: authed.id, agents: alive },
            );
          }
        }
        // The same declaration reconciles to the same records (ids and URLs kept): harmless for the
        // server's other agents, and a mapping refused before for a fixable reason is tried again.
        const rejected = await reconcileAgentMappings(deps.store, config, authed, specs);
        deps.declarations?.set(authed.id, { key, rejected });
        // The record as it is now (the API may have changed it while this handshake waited).
        const server = (await deps.store.getServer(authed.id)) ?? authed;
        const mappings = resolveMappings(server, await deps.store.listMappings(server.id));
        stillWanted();
        const localHost = clip(hello.localHost, 255) || '127.0.0.1';
        const channel = new ControlChannel(stream);
        const session = new AgentSession({
          id: randomUUID(),
          server,
          mappings,
          mux,
          control: channel,
          peer,
          agentVersion: clip(hello.agentVersion) || 'unknown',
          hostname: clip(hello.hostname),
          localHost,
          canLoop: isLocalAddress(peer.remoteAddress) && bindCovers(config.ports.bind, localHost),
          // Sealed data connections: both sides can, and the keys come from this TLS session.
          sealed: deps.sealed && hello.sealedData && conn instanceof TLSSocket ? (id) => streamSecrets(conn, id) : null,
          sealedUdp: hello.sealedUdp === true,
          logger: log.child({ server: server.id }),
          config,
        });
        await deps.onAuthenticated(session);
        channel.send(
          {
            welcome: {
              version,
              serverId: server.id,
              owner: server.owner,
              publicHostname: config.publicHostname,
              ports: server.ports,
              mappings: session.wireMappings(),
              udp: server.udp,
              sessionId: session.id,
              relayVersion: deps.relayVersion,
              rejected,
              sealedData: session.sealed !== null,
            },
          },
          replyTo,
        );
        session.markReady();
        session.logger.info({ agentVersion: session.agentVersion, hostname: session.hostname, mappings: mappings.length, rejected: rejected.length, sealedData: session.sealed !== null }, 'agent online');
      });
    } catch (err) {
      const e = isPorticoError(err) ? err : new PorticoError('INTERNAL', 'internal error during handshake');
      if (!isPorticoError(err)) log.error({ err }, 'handshake error');
      refuse(stream, e, replyTo);
    }
  };
}

function negotiate(hello: Hello): number {
  const max = hello.maxVersion || 0;
  const min = hello.minVersion || max;
  if (max < MIN_PROTOCOL_VERSION || min > PROTOCOL_VERSION) {
    throw new PorticoError('VERSION_UNSUPPORTED', `agent speaks protocol ${min}..${max}, this relay ${MIN_PROTOCOL_VERSION}..${PROTOCOL_VERSION}; upgrade the older side`);
  }
  return Math.min(max, PROTOCOL_VERSION);
}

async function authenticate(hello: Hello, store: Store): Promise<ServerRecord> {
  const parsed = parseAgentToken(hello.token ?? '');
  const server = parsed ? await store.getServer(parsed.serverId) : undefined;
  // Same work whether or not the server exists, so timing does not tell.
  const ok = verifySecret(parsed?.secret ?? 'x', server?.tokenHash ?? '0'.repeat(64));
  if (!parsed || !server || !ok) throw new PorticoError('UNAUTHORIZED', 'agent token rejected (unknown server, rotated or mistyped token)');
  return server;
}

/** What an agent says about itself (version, hostname, local_host) is shown and logged: at most `max` characters of it. */
function clip(s: string | undefined, max = 128): string {
  return (s ?? '').slice(0, max);
}
