/**
 * One tunnel attempt: dial the relay, start the mux (client side), open the
 * control stream, send Hello and wait for Welcome. Rejects with the relay's
 * PorticoError (UNAUTHORIZED, VERSION_UNSUPPORTED, …) or a network error.
 */
import os from 'node:os';
import { readFileSync } from 'node:fs';
import { systemTrust } from '../shared/transport/system-ca.js';
import { PorticoError } from '../shared/errors.js';
import { ControlChannel } from '../shared/control/channel.js';
import { Session as MuxSession, type MuxStream } from '../shared/mux/index.js';
import { tlsClientTransport } from '../shared/transport/tls.js';
import { wsClientTransport } from '../shared/transport/websocket.js';
import type { ClientTransport, TransportName } from '../shared/transport/transport.js';
import type { AgentConfig } from '../shared/config/types.js';
import { VERSION } from '../shared/version.js';
import net from 'node:net';
import { TLSSocket } from 'node:tls';
import { sealedEngine, type SealedEngine } from '../shared/sealed/engine.js';
import { streamSecrets } from '../shared/sealed/keys.js';
import { IdleDataConnections } from '../shared/sealed/idle-pool.js';
import { RecentIds } from '../shared/sealed/recent-ids.js';
import type { SealedDataPath } from './proxies/types.js';
import { MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, Protocol, type Welcome } from '../proto/index.js';

export interface Tunnel {
  mux: MuxSession;
  control: ControlChannel;
  welcome: Welcome;
  remoteAddress: string;
}

const CONNECT_TIMEOUT_MS = 15_000;

/** Client transports by name; the mux above never knows which one it runs on. */
const clientTransports = { tls: tlsClientTransport, websocket: wsClientTransport } satisfies Record<TransportName, ClientTransport>;

/** `sealed()` is the tunnel's sealed data path once Welcome asked for it (streams come only after Welcome). */
export async function connectTunnel(config: AgentConfig, onStream: (s: MuxStream, sealed: () => SealedDataPath | undefined) => void): Promise<Tunnel> {
  const socket = await clientTransports[config.transport ?? 'tls'].dial({
    host: config.relay.host,
    port: config.relay.port,
    // --ca FILE; else Node's roots and the system's trust store (shared/transport/system-ca.ts).
    ca: config.ca ? readFileSync(config.ca) : config.insecure ? undefined : systemTrust(),
    insecure: config.insecure,
    serverName: config.serverName,
    timeout: CONNECT_TIMEOUT_MS,
    path: config.relayPath,
  } as Parameters<typeof wsClientTransport.dial>[0]);
  // Sealed data connections need the engine and a TLS session to derive their keys from.
  const engine = sealedEngine();
  const tlsSocket = socket instanceof TLSSocket ? socket : null;
  let sealed: SealedDataPath | undefined;
  const mux = new MuxSession(socket, {
    isClient: true,
    maxStreamWindow: config.streamWindow,
    keepaliveInterval: config.keepaliveInterval,
    keepaliveTimeout: config.keepaliveTimeout,
    onStream: (s) => onStream(s, () => sealed),
  });
  mux.on('error', () => undefined);
  const control = new ControlChannel(mux.open(), CONNECT_TIMEOUT_MS);
  try {
    const reply = await control.request({
      hello: {
        maxVersion: PROTOCOL_VERSION,
        minVersion: MIN_PROTOCOL_VERSION,
        token: config.token,
        agentVersion: VERSION,
        hostname: os.hostname(),
        localHost: config.localHost,
        sealedData: engine !== null && tlsSocket !== null,
        sealedUdp: engine !== null && tlsSocket !== null,
        mappings: config.mappings.map((m) => ({
          internalPort: m.internalPort,
          externalPort: m.externalPort ?? 0,
          name: m.name ?? '',
          http: m.http ?? false,
          protocol: m.protocol === 'udp' ? Protocol.UDP : Protocol.TCP,
          description: m.description ?? '',
          group: m.group ?? '',
        })),
      },
    });
    if (!('welcome' in reply) || !reply.welcome) throw new PorticoError('PROTOCOL_ERROR', 'relay answered hello without a welcome');
    const tunnel: Tunnel = { mux, control, welcome: reply.welcome, remoteAddress: config.relay.host };
    if (reply.welcome.sealedData && engine && tlsSocket) {
      sealed = sealedPath(engine, tlsSocket);
      const pool = sealed.pool;
      mux.once('close', () => pool.close());
    }
    return tunnel;
  } catch (err) {
    mux.destroy();
    throw err;
  }
}

/**
 * New data connections being set up at once; well under the relay's
 * tunnel.max_pending_per_ip (64), which counts them until their preamble.
 */
const MAX_DIALING = 16;
/** How long a stream of a burst waits for a free dialing slot before it rides the mux instead. */
const DIAL_QUEUE_MS = 2_000;

/** Sealed ids remembered per session against a relay that names one twice (shared/sealed/recent-ids.ts). */
const RECENT_IDS = 4096;

/**
 * Data connections go to the address the tunnel itself reached (the same relay, not another A record).
 * Exported for its tests.
 */
export function sealedPath(engine: SealedEngine, tls: TLSSocket): SealedDataPath {
  const host = tls.remoteAddress!;
  const port = tls.remotePort!;
  const used = new RecentIds(RECENT_IDS);
  let dialing = 0;
  const queue: ((ok: boolean) => void)[] = [];
  return {
    engine,
    // The relay keeps at most 64 idle per session for 30 s and closes the rest itself; the agent's
    // sweep drops what the relay closed, its looser limits are only a backstop.
    pool: new IdleDataConnections({ max: 256, idleMs: 10 * 60_000, quiet: (s) => engine.quiet(s) }),
    secrets: (id) => {
      // The same id again would seal under the same key and nonces: refuse it (PROTOCOL_ERROR).
      if (!used.add(id)) throw new PorticoError('PROTOCOL_ERROR', `the relay named sealed id ${id.toString('hex')} a second time in this session; refused, since its keys and nonces would repeat`);
      return streamSecrets(tls, id);
    },
    dial: async () => {
      if (dialing < MAX_DIALING) dialing++;
      else {
        // A burst: wait for a slot (handed over by the one that finishes), a short while.
        const slot = await new Promise<boolean>((resolve) => {
          const entry = (ok: boolean) => {
            clearTimeout(timer);
            resolve(ok);
          };
          const timer = setTimeout(() => {
            const i = queue.indexOf(entry);
            if (i >= 0) queue.splice(i, 1);
            resolve(false);
          }, DIAL_QUEUE_MS);
          queue.push(entry);
        });
        if (!slot) return null;
      }
      const sock = net.connect({ host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 30_000 });
      sock.pause();
      let counted = true;
      return {
        sock,
        done: () => {
          if (!counted) return;
          counted = false;
          const next = queue.shift();
          if (next) next(true); // the slot passes on; `dialing` stays
          else dialing--;
        },
      };
    },
  };
}
