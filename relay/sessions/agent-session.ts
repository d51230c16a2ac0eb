/**
 * One connected agent, relay side: its mux session, control channel, the
 * server it authenticated as, and the forwarding table it serves. Opens data
 * streams (header out, open-result back) for the proxies.
 */
import { EventEmitter } from 'node:events';
import { PorticoError, type ErrorCode } from '../../shared/errors.js';
import { errorBody, type ControlChannel } from '../../shared/control/channel.js';
import { encodeFrame } from '../../shared/framing/length-prefixed.js';
import { readFrame } from '../../shared/framing/read-frame.js';
import type { Session as MuxSession, MuxStream } from '../../shared/mux/index.js';
import type { PeerInfo } from '../../shared/transport/transport.js';
import type { Logger } from '../../shared/logging.js';
import { OpenResultCodec, Protocol as WireProtocol, StreamHeaderCodec, type HealthStateMsg, type MappingMsg, type OpenResult, type StreamHeader } from '../../proto/index.js';
import type { RelayConfig } from '../../shared/config/types.js';
import type { ServerRecord } from '../store/store.js';
import type { ResolvedMapping } from '../mappings/resolve.js';
import { httpsUrls, rawUrl } from '../mappings/urls.js';
import { healthEnabled } from '../health/registry.js';
import type { StreamSecrets } from '../../shared/sealed/keys.js';
import { IdleDataConnections } from '../../shared/sealed/idle-pool.js';
import { sealedEngine } from '../../shared/sealed/engine.js';

/** Sealed data connections kept between streams per agent session, and how long one may sit idle. */
const IDLE_DATA_CONNECTIONS = 64;
const DATA_CONNECTION_IDLE_MS = 30_000;

export interface AgentSessionInit {
  id: string;
  server: ServerRecord;
  mappings: ResolvedMapping[];
  mux: MuxSession;
  control: ControlChannel;
  peer: PeerInfo;
  agentVersion: string;
  hostname: string;
  localHost: string;
  /** The agent runs on this host and its local_host is reachable on the relay's public bind address. */
  canLoop: boolean;
  /** Secrets of a sealed stream with this id, when the agent takes sealed data connections (docs/native-data-path.md). */
  sealed?: ((id: Buffer) => StreamSecrets) | null;
  /** With `sealed`: the agent moves UDP flows onto sealed data connections when asked (a seal record). */
  sealedUdp?: boolean;
  logger: Logger;
  config: RelayConfig;
}

export interface OpenedStream {
  stream: MuxStream;
  /** Resolves with the agent's OpenResult (ok or not); rejects on timeout or stream failure. */
  opened: Promise<OpenResult>;
}

export class AgentSession extends EventEmitter {
  readonly id: string;
  readonly mux: MuxSession;
  readonly control: ControlChannel;
  readonly peer: PeerInfo;
  readonly agentVersion: string;
  readonly hostname: string;
  readonly localHost: string;
  readonly canLoop: boolean;
  readonly sealed: ((id: Buffer) => StreamSecrets) | null;
  /** The agent takes seal records on UDP flows (only with `sealed`). */
  readonly sealedUdp: boolean;
  /** Sealed data connections between streams (when sealed). */
  readonly dataPool: IdleDataConnections | null;
  readonly connectedAt = new Date();
  readonly logger: Logger;
  server: ServerRecord;
  mappings: ResolvedMapping[];
  private readonly config: RelayConfig;
  private closedFlag = false;
  /** This agent's own latest health result per mapping (replicas of one server are told apart by it). */
  private readonly health = new Map<string, HealthStateMsg>();

  constructor(init: AgentSessionInit) {
    super();
    this.id = init.id;
    this.server = init.server;
    this.mappings = init.mappings;
    this.mux = init.mux;
    this.control = init.control;
    this.peer = init.peer;
    this.agentVersion = init.agentVersion;
    this.hostname = init.hostname;
    this.localHost = init.localHost;
    this.canLoop = init.canLoop;
    this.sealed = init.sealed ?? null;
    this.sealedUdp = this.sealed !== null && init.sealedUdp === true;
    const engine = this.sealed ? sealedEngine() : null;
    this.dataPool = engine ? new IdleDataConnections({ max: IDLE_DATA_CONNECTIONS, idleMs: DATA_CONNECTION_IDLE_MS, quiet: (s) => engine.quiet(s) }) : null;
    this.logger = init.logger;
    this.config = init.config;
    // The agent ending its control stream means it is leaving: finish open streams, then close.
    this.control.once('close', () => {
      if (!this.mux.closed) void this.mux.close();
      this.draining();
    });
    // The agent drains (SIGTERM): it takes no new streams from now on.
    this.mux.once('goaway', () => this.draining());
    this.mux.once('close', (err?: Error) => {
      this.closedFlag = true;
      this.dataPool?.close();
      this.control.close();
      this.emit('close', err);
    });
  }

  get serverId(): string {
    return this.server.id;
  }

  get closed(): boolean {
    return this.closedFlag || this.mux.closed;
  }

  /** Open data streams (the control stream excluded). */
  get openStreams(): number {
    return Math.max(0, this.mux.streamCount - 1);
  }

  /** Opens a data stream to the agent: writes the header; the open-result is read from the stream. */
  open(header: StreamHeader, timeoutMs: number): OpenedStream {
    if (this.closed) throw new PorticoError('AGENT_OFFLINE', `server ${this.server.id} is not connected`);
    const stream = this.mux.open();
    stream.write(encodeFrame(StreamHeaderCodec.encode(header)));
    const opened = readFrame(stream, timeoutMs).then((buf) => {
      try {
        return OpenResultCodec.decode(buf);
      } catch (err) {
        throw new PorticoError('PROTOCOL_ERROR', `malformed open-result: ${(err as Error).message}`);
      }
    });
    return { stream, opened };
  }

  /** Welcome was sent: the agent knows its forwarding table and can serve streams. */
  private readyFlag = false;
  /** terminate() was called: no new streams go here. */
  private retiring = false;

  private drainingEmitted = false;

  /** Emits 'draining' once, when the session stops taking new streams before it closes. */
  private draining(): void {
    if (this.drainingEmitted || this.closed) return;
    this.drainingEmitted = true;
    this.emit('draining');
  }

  /** Marks the session ready for streams (accept.ts, right after Welcome). */
  markReady(): void {
    this.readyFlag = true;
  }

  /** New streams may go here: Welcome sent, not terminating, no GoAway either way, not closed. */
  get usable(): boolean {
    return this.readyFlag && !this.retiring && !this.closed && this.mux.acceptsStreams;
  }

  /** Records a health report of this agent (the latest result per checked mapping wins). */
  noteHealth(states: readonly HealthStateMsg[]): void {
    for (const st of states) {
      const m = this.mappings.find((x) => x.id === st.mappingId);
      if (m && healthEnabled(m)) this.health.set(st.mappingId, st);
    }
  }

  /** This agent's latest health result for a mapping: healthy, unhealthy or unknown. */
  healthOf(mappingId: string): string {
    return this.health.get(mappingId)?.status ?? 'unknown';
  }

  /** Every latest health result of this agent (to re-apply when it becomes the server's primary). */
  healthStates(): HealthStateMsg[] {
    return [...this.health.values()];
  }

  /** The mapping serving a public port and protocol, if any. */
  mappingForPort(port: number, protocol: 'tcp' | 'udp'): ResolvedMapping | undefined {
    return this.mappings.find((m) => m.externalPort === port && m.protocol === protocol);
  }

  /** The wire form of the forwarding table (for Welcome and MappingsUpdate). */
  wireMappings(): MappingMsg[] {
    return toWireMappings(this.config, this.server, this.mappings);
  }

  /** Pushes a new forwarding table to the agent (live, no reconnect). */
  update(server: ServerRecord, mappings: ResolvedMapping[]): void {
    this.server = server;
    this.mappings = mappings;
    // A result of a check that was removed or turned off says nothing any more.
    for (const id of [...this.health.keys()]) {
      const m = mappings.find((x) => x.id === id);
      if (!m || !healthEnabled(m)) this.health.delete(id);
    }
    if (this.closed) return;
    this.control.send({ mappingsUpdate: { mappings: this.wireMappings(), udp: server.udp, ports: server.ports } });
  }

  /** Tells the agent why, then ends the session. */
  terminate(code: ErrorCode, message: string): void {
    if (this.closed) return;
    this.retiring = true;
    this.draining();
    this.control.send(errorBody(new PorticoError(code, message)));
    this.mux.goAway();
    // Give the error a moment to reach the agent, then cut everything.
    const t = setTimeout(() => this.mux.destroy(new PorticoError(code, message)), 200);
    t.unref();
    this.mux.once('close', () => clearTimeout(t));
  }
}

export function toWireMappings(config: RelayConfig, server: ServerRecord, mappings: ResolvedMapping[]): MappingMsg[] {
  return mappings.map((m) => ({
    id: m.id,
    internalPort: m.internalPort,
    externalPort: m.externalPort,
    protocol: m.protocol === 'udp' ? WireProtocol.UDP : WireProtocol.TCP,
    name: m.name ?? '',
    http: m.http,
    description: m.description,
    rawUrl: rawUrl(config, m),
    httpsUrls: httpsUrls(config, server, m),
    source: m.source,
    healthCheck: m.healthCheck ? (m.healthCheck as MappingMsg['healthCheck']) : null,
  }));
}
