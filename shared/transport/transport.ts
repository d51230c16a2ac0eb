/**
 * The transport layer: a byte pipe between agent and relay. The mux layer
 * runs on whatever Duplex a transport yields and never knows which one it is.
 */
import type { Duplex } from 'node:stream';

export interface PeerInfo {
  remoteAddress: string;
  remotePort: number;
  /** 'tls' or 'websocket'. */
  transport: TransportName;
}

export type TransportName = 'tls' | 'websocket';

export interface TransportListener {
  readonly host: string;
  readonly port: number;
  /** Stops accepting; existing connections stay up. */
  close(): Promise<void>;
}

export interface ListenOptions {
  host: string;
  port: number;
  cert: string | Buffer;
  key: string | Buffer;
  /** Max time for the TLS handshake (ms). */
  handshakeTimeout: number;
  /** Connections from one IP address still in the TLS handshake at once; more are closed at accept (default: no cap). */
  maxPendingPerIp?: number;
  /**
   * Connections whose first byte is not a TLS record's (0x16) go here with
   * what was read of them: the sealed data connections
   * (relay/sealed/rendezvous.ts), which keeps its own count of them (an
   * agent may open many at once); they leave maxPendingPerIp's count here.
   * `remainingMs` is what is left of the handshake timeout (one deadline
   * from accept). Without it every connection is TLS.
   */
  onSealed?: (raw: import('node:net').Socket, first: Buffer, remainingMs: number) => void;
  /**
   * With onSealed: the first byte already waiting on a just-accepted socket,
   * without reading it, or -1 when none is there yet (the listener then reads
   * the first bytes itself). A TLS connection whose first bytes JavaScript
   * never read keeps Node's large TLS read buffers (SealedEngine.firstByte).
   */
  firstByte?: (raw: import('node:net').Socket) => number;
  /** With firstByte: called once listening, to have the kernel accept connections only once their first bytes are there. */
  deferAccept?: (server: import('node:net').Server) => void;
}

export interface DialOptions {
  host: string;
  port: number;
  /** PEM CA bundle to verify the relay with; system trust when absent. */
  ca?: string | Buffer | string[];
  /** Skip certificate verification (dev only). */
  insecure: boolean;
  /** Name to verify in the certificate (defaults to host). */
  serverName?: string;
  /** Connect + handshake timeout (ms). */
  timeout: number;
}

export interface ServerTransport {
  readonly name: TransportName;
  listen(opts: ListenOptions, onConnection: (conn: Duplex, peer: PeerInfo) => void, onError: (err: Error, peer?: Partial<PeerInfo>) => void): Promise<TransportListener>;
}

export interface ClientTransport {
  readonly name: TransportName;
  dial(opts: DialOptions): Promise<Duplex & { remoteAddress?: string }>;
}
