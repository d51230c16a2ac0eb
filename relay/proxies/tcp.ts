/**
 * Raw TCP publishing: a listener per public port while the server's agent is
 * online; each client connection becomes one mux stream to the agent.
 */
import net from 'node:net';
import { errorCodeFromWire } from '../../shared/errors.js';
import { isLocalAddress, normalizeAddress } from '../../shared/util/net.js';
import { splice } from '../../shared/util/splice.js';
import { adoptAccepted, SocketReader } from '../../shared/util/socket-reader.js';
import { StreamKind } from '../../proto/index.js';
import type { ResolvedMapping } from '../mappings/resolve.js';
import type { PortPublisher, PublishProblem, PublisherDeps } from './types.js';
import { rawIpAllowed } from '../access/raw.js';
import type { TcpTarget } from '../observability.js';
import { sealedEngine } from '../../shared/sealed/engine.js';
import { openSealed } from './tcp-sealed.js';

/** How long the agent has to answer a stream header with its open-result. */
const OPEN_TIMEOUT_MS = 15_000;

interface Listener {
  serverId: string;
  port: number;
  server: net.Server;
}

export function createTcpPublisher(deps: PublisherDeps): PortPublisher {
  return new TcpPublisher(deps);
}

class TcpPublisher implements PortPublisher {
  readonly protocol = 'tcp' as const;
  private readonly listeners = new Map<number, Listener>();
  private readonly sockets = new Set<net.Socket>();
  private closing = false;

  constructor(private readonly deps: PublisherDeps) {}

  get listening(): number {
    return this.listeners.size;
  }

  get connections(): number {
    return this.sockets.size;
  }

  async sync(serverId: string, mappings: ResolvedMapping[]): Promise<PublishProblem[]> {
    if (this.closing) return []; // stopping: no new listeners (a handshake finishing late)
    const want = new Set(mappings.filter((m) => m.protocol === 'tcp').map((m) => m.externalPort));
    const closes: Promise<void>[] = [];
    for (const l of this.listeners.values()) {
      if (l.serverId === serverId && !want.has(l.port)) closes.push(this.closeListener(l));
    }
    await Promise.all(closes);
    const problems: PublishProblem[] = [];
    await Promise.all(
      [...want].map(async (port) => {
        const have = this.listeners.get(port);
        if (have) {
          if (have.serverId === serverId) return;
          problems.push({ port, code: 'PORT_ALREADY_MAPPED', message: `port ${port} is served for server ${have.serverId}` });
          return;
        }
        try {
          await this.listen(serverId, port);
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          const message = `cannot listen on ${this.deps.config.ports.bind}:${port} (${e.code ?? e.message}): another process on the relay host holds it`;
          this.deps.logger.error({ server: serverId, port, err: e.code ?? e.message }, message);
          problems.push({ port, code: 'INTERNAL', message });
        }
      }),
    );
    return problems;
  }

  async closeServer(serverId: string): Promise<void> {
    await Promise.all([...this.listeners.values()].filter((l) => l.serverId === serverId).map((l) => this.closeListener(l)));
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.listeners.values()].map((l) => this.closeListener(l)));
  }

  private listen(serverId: string, port: number): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (sock) => this.onConnection(sock, serverId, port));
    const entry: Listener = { serverId, port, server };
    this.listeners.set(port, entry);
    return new Promise<void>((resolve, reject) => {
      server.once('error', (err) => {
        if (this.listeners.get(port) === entry) this.listeners.delete(port);
        reject(err);
      });
      server.listen({ port, host: this.deps.config.ports.bind, exclusive: true, backlog: 1024 }, () => {
        server.removeAllListeners('error');
        server.on('error', (err) => this.deps.logger.error({ port, err: err.message }, 'public listener error'));
        resolve();
      });
    });
  }

  private closeListener(l: Listener): Promise<void> {
    if (this.listeners.get(l.port) === l) this.listeners.delete(l.port);
    return new Promise<void>((res) => l.server.close(() => res()));
  }

  private onConnection(accepted: net.Socket, serverId: string, port: number): void {
    // Read the client through our own (growing) buffers: a bulk upload becomes 256 KiB mux bursts —
    // unless the bytes will take a sealed data connection (the engine reads the socket itself).
    const sealed = this.deps.sealed !== undefined && this.deps.registry.primary(serverId)?.sealed;
    const reader = sealed ? null : new SocketReader();
    const adopted = reader ? adoptAccepted(accepted, reader, { allowHalfOpen: true }) : null;
    // (Not adopted: the paused socket starts reading when splice resumes it.)
    const sock = adopted ?? accepted;
    this.sockets.add(sock);
    sock.once('close', () => this.sockets.delete(sock));
    sock.on('error', () => undefined);
    void this.route(sock, serverId, port, adopted && reader ? reader : undefined);
  }

  private async route(sock: net.Socket, serverId: string, port: number, reader: SocketReader | undefined): Promise<void> {
    const { registry, loopGuard, logger } = this.deps;
    // The mapping, from the server's oldest agent (all its agents serve the same table); which agent
    // (replicas share a token) or which group member serves the connection is chosen below.
    const session = registry.primary(serverId);
    const mapping = session?.mappingForPort(port, 'tcp');
    if (!session || !mapping || this.closing) {
      sock.resetAndDestroy();
      return;
    }
    const clientAddress = normalizeAddress(sock.remoteAddress);
    const clientPort = sock.remotePort ?? 0;
    // Access control: IP rules on the real peer address (relay/access/raw.ts); refused clients see a reset.
    if (!rawIpAllowed(session.server, mapping, clientAddress, { protocol: 'tcp', port, logger })) {
      sock.resetAndDestroy();
      return;
    }
    if (isLocalAddress(clientAddress) && (await loopGuard.isLoop(clientAddress, clientPort, port))) {
      loopGuard.refused++;
      logger.warn(
        { server: serverId, port, code: 'LOOP_DETECTED' },
        `refused a loop: a connection forwarded by server ${serverId}'s agent came back into the relay's own public port ${port}; nothing listens on the internal port on the agent side, or local_host points at the relay`,
      );
      sock.resetAndDestroy();
      return;
    }
    if (sock.destroyed) return;
    // Replicas and health (relay/observability.ts): a group member's port balances over the group's
    // eligible members (any server); an unhealthy mapping refuses new connections.
    const obs = this.deps.obs;
    const ownTarget = (): TcpTarget | null => {
      const s = registry.get(serverId, mapping.id);
      return s ? { session: s, mapping } : null;
    };
    const dest: TcpTarget | null = obs ? obs.tcpTarget(session, mapping) : ownTarget();
    if (!dest) {
      sock.resetAndDestroy();
      return;
    }
    const header = { mappingId: dest.mapping.id, internalPort: dest.mapping.internalPort, kind: StreamKind.TCP, clientAddress, clientPort, publicPort: port };
    const rendezvous = dest.session.sealed ? this.deps.sealed : undefined;
    const engine = rendezvous ? sealedEngine() : null;
    if (engine && rendezvous) {
      // The bytes go over a sealed data connection, moved by the native engine (tcp-sealed.ts).
      let live: ReturnType<NonNullable<typeof obs>['tcpOpened']> | undefined;
      let ended = false;
      const counted = openSealed({
        sock,
        ...(reader ? { reader } : {}),
        session: dest.session,
        header,
        engine,
        rendezvous,
        loopGuard,
        logger,
        timeoutMs: OPEN_TIMEOUT_MS,
        onClosed: () => {
          ended = true;
          if (live) obs?.connectionClosed(live);
        },
      });
      live = obs?.tcpOpened(dest.session.serverId, dest.mapping.id, clientAddress, counted);
      if (ended && live) obs?.connectionClosed(live); // refused at once
      return;
    }
    let opened;
    try {
      opened = dest.session.open(
        header,
        OPEN_TIMEOUT_MS,
      );
    } catch {
      sock.resetAndDestroy();
      return;
    }
    const { stream } = opened;
    if (dest.session.canLoop) loopGuard.track(dest.mapping.internalPort, opened.opened, stream);
    const ready = opened.opened.then((r) => {
      if (r.ok) return true;
      const code = errorCodeFromWire(r.code ?? 0);
      logger.debug({ server: dest.session.serverId, port, internalPort: dest.mapping.internalPort, code }, r.message || 'agent could not open the local port');
      // Look like a closed port to the client: reset, not a clean close.
      sock.resetAndDestroy();
      return false;
    });
    // Statistics: one connection; bytes read from splice's counters at flush/scrape time and at close.
    let live: ReturnType<NonNullable<typeof obs>['tcpOpened']> | undefined;
    const counted = splice(sock, stream, obs ? () => live && obs.connectionClosed(live) : undefined, ready, reader ? { a: reader } : undefined);
    live = obs?.tcpOpened(dest.session.serverId, dest.mapping.id, clientAddress, counted);
  }
}

