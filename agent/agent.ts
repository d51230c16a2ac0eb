/**
 * The agent: keeps one tunnel to the relay up (exponential backoff with
 * jitter between attempts), serves the data streams the relay opens, prints
 * the endpoint table, applies live mapping updates.
 */
import { EventEmitter } from 'node:events';
import { PorticoError, isPorticoError, type ErrorCode } from '../shared/errors.js';
import { errorFromEnvelope } from '../shared/control/channel.js';
import { readFrame } from '../shared/framing/read-frame.js';
import { Backoff } from '../shared/util/backoff.js';
import type { MuxStream } from '../shared/mux/index.js';
import type { AgentConfig } from '../shared/config/types.js';
import type { Logger } from '../shared/logging.js';
import { StreamHeaderCodec, type StreamHeader, type Welcome } from '../proto/index.js';
import { ForwardTable } from './forward-table.js';
import { endpointLines } from './print.js';
import { handlerFor } from './proxies/registry.js';
import { sendOpenError } from './proxies/open-result.js';
import type { Tunnel } from './connect.js';
import { connectTunnel } from './connect.js';
import { HealthChecker } from './health/checker.js';
import type { SealedDataPath } from './proxies/types.js';

/** Errors after which retrying cannot help: the agent exits 2. */
const FATAL: ReadonlySet<ErrorCode> = new Set(['UNAUTHORIZED', 'TOKEN_REVOKED', 'VERSION_UNSUPPORTED', 'CONFIG_INVALID', 'SESSION_REPLACED']);
const HEADER_TIMEOUT_MS = 10_000;
const DIAL_TIMEOUT_MS = 10_000;

export interface AgentExit {
  code: number;
  reason: string;
}

export class Agent extends EventEmitter {
  readonly table = new ForwardTable();
  /** Health checks of mappings with an enabled health_check (agent/health/checker.ts). */
  readonly health = new HealthChecker();
  private tunnel: Tunnel | null = null;
  private stopped = false;
  private wake: (() => void) | null = null;
  private fatal: PorticoError | null = null;
  private serverId = '';

  constructor(
    readonly config: AgentConfig,
    readonly logger: Logger,
    private readonly out: (line: string) => void = (l) => process.stdout.write(l + '\n'),
  ) {
    super();
  }

  get connected(): boolean {
    return this.tunnel !== null && !this.tunnel.mux.closed;
  }

  /** Runs until stopped (exit 0), a fatal refusal (exit 2) or --max-retries failed attempts in a row (exit 1). */
  async run(): Promise<AgentExit> {
    const backoff = new Backoff(500, this.config.maxBackoff);
    let failures = 0;
    const relay = `${this.config.relay.host}:${this.config.relay.port}`;
    while (!this.stopped) {
      try {
        const tunnel = await connectTunnel(this.config, (s, sealed) => this.onStream(s, sealed));
        if (this.stopped) {
          tunnel.mux.destroy();
          break;
        }
        failures = 0;
        backoff.reset();
        await this.serve(tunnel);
        if (this.fatal) return this.exitFatal(this.fatal);
        if (this.stopped) break;
        this.logger.warn({ relay }, 'tunnel lost; reconnecting');
      } catch (err) {
        if (isPorticoError(err) && FATAL.has(err.code)) return this.exitFatal(err);
        failures++;
        const msg = describeDialError(err);
        if (this.config.maxRetries !== undefined && failures > this.config.maxRetries) {
          return { code: 1, reason: `relay ${relay} unreachable after ${failures} attempt${failures === 1 ? '' : 's'}: ${msg}` };
        }
        this.logger.warn({ relay, attempt: failures, err: msg }, 'cannot connect to relay');
      }
      if (this.stopped) break;
      const delay = backoff.next();
      this.logger.info({ delayMs: delay }, 'next attempt');
      await new Promise<void>((res) => {
        const t = setTimeout(res, delay);
        this.wake = () => {
          clearTimeout(t);
          res();
        };
      });
      this.wake = null;
    }
    return { code: 0, reason: 'stopped' };
  }

  /** Closes the tunnel and makes run() return 0. */
  stop(): void {
    this.stopped = true;
    this.wake?.();
    this.health.stop();
    const t = this.tunnel;
    if (t) {
      t.control.send({ shutdown: { reason: 'agent stopping', graceMs: 0 } });
      // Ending the control stream lets close() finish as soon as data streams are done.
      t.control.close();
      void t.mux.close();
      const hard = setTimeout(() => t.mux.destroy(), 2_000);
      hard.unref();
      t.mux.once('close', () => clearTimeout(hard));
    }
  }

  private exitFatal(err: PorticoError): AgentExit {
    return { code: 2, reason: `${err.code}: ${err.message}` };
  }

  private serve(tunnel: Tunnel): Promise<void> {
    this.tunnel = tunnel;
    const w = tunnel.welcome;
    this.serverId = w.serverId;
    this.apply(w.mappings, w.ports, Boolean(w.udp));
    this.printWelcome(w);
    this.emit('online', w);
    // Health results go over this tunnel's control channel (a full report now, then on change / every few seconds).
    this.health.setSender((states) => tunnel.control.send({ healthReport: { states } }));
    tunnel.control.setHandlers({
      mappingsUpdate: (env) => {
        if (!('mappingsUpdate' in env)) return;
        const u = env.mappingsUpdate;
        this.apply(u.mappings ?? [], u.ports?.length ? u.ports : this.table.ports, Boolean(u.udp));
        this.out('mappings updated:');
        for (const line of endpointLines(this.table.all(), this.config.localHost)) this.out(line);
        this.emit('mappings', this.table.all());
      },
      error: (env) => {
        const err = errorFromEnvelope(env);
        this.logger.warn({ code: err.code }, `relay: ${err.message}`);
        if (FATAL.has(err.code)) this.fatal = err;
      },
      shutdown: (env) => {
        if ('shutdown' in env) this.logger.info({ reason: env.shutdown.reason }, 'relay is going away; will reconnect');
      },
    });
    return new Promise<void>((resolve) => {
      tunnel.mux.once('close', () => {
        this.health.setSender(null);
        this.tunnel = null;
        this.emit('offline');
        resolve();
      });
    });
  }

  private apply(mappings: Welcome['mappings'], ports: number[], udp: boolean): void {
    this.table.replace(mappings, ports, udp);
    if (!this.stopped) this.health.update(mappings, this.config.localHost);
  }

  private printWelcome(w: Welcome): void {
    this.out(`connected to ${this.config.relay.host}:${this.config.relay.port} as server ${w.serverId} (owner ${w.owner}), ports ${describePorts(w.ports)}`);
    for (const r of w.rejected ?? []) this.out(`refused mapping: ${r.message}`);
    for (const line of endpointLines(w.mappings, this.config.localHost)) this.out(line);
  }

  private onStream(stream: MuxStream, sealedPath: () => SealedDataPath | undefined): void {
    stream.on('error', () => undefined);
    readFrame(stream, HEADER_TIMEOUT_MS).then(
      (buf) => {
        let header: StreamHeader;
        try {
          header = StreamHeaderCodec.decode(buf);
        } catch {
          stream.destroy();
          return;
        }
        const mapping = this.table.get(header.mappingId);
        if (!mapping || mapping.internalPort !== header.internalPort) {
          sendOpenError(stream, 'NOT_FOUND', `mapping ${header.mappingId} is not served by this agent`);
          return;
        }
        const handler = handlerFor(header.kind ?? 0);
        if (!handler) {
          sendOpenError(stream, 'PROTOCOL_ERROR', `stream kind ${header.kind} is not supported by this agent`);
          return;
        }
        const sealed = sealedPath();
        handler(stream, header, mapping, { localHost: this.config.localHost, serverId: this.serverId, logger: this.logger, dialTimeout: DIAL_TIMEOUT_MS, ...(sealed ? { sealed } : {}) });
      },
      () => stream.destroy(),
    )
      // A handler that throws (the tunnel going away under it) resets its stream, never the agent.
      .catch((err: Error) => {
        this.logger.debug({ err: err.message }, 'stream handler failed');
        stream.destroy();
      });
  }
}

function describePorts(ports: number[]): string {
  if (ports.length === 0) return 'none';
  const contiguous = ports[ports.length - 1]! - ports[0]! === ports.length - 1;
  return contiguous ? `${ports[0]}-${ports[ports.length - 1]}` : ports.join(',');
}

function describeDialError(err: unknown): string {
  if (isPorticoError(err)) return `${err.code}: ${err.message}`;
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ECONNREFUSED') return `connection refused (is the relay running and tunnel.listen reachable?)`;
  if (e.code && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(e.code)) return `relay certificate not trusted (${e.code}); pass --ca FILE (the relay's CA) or --insecure for dev`;
  if (e.code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `relay certificate does not match the relay host name (${e.message})`;
  return e.code ? `${e.code}: ${e.message}` : String(e.message ?? err);
}
