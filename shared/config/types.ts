/**
 * Validated, frozen configuration shapes. The YAML keys are snake_case (see
 * ../../deploy/config/relay.full.yaml); these objects are their camelCase form,
 * with durations in milliseconds and addresses split into host and port.
 */

export interface HostPort {
  host: string;
  port: number;
}

export interface RelayConfig {
  /** Absolute path. */
  dataDir: string;
  domain: string;
  publicHostname: string;
  dev: boolean;
  logLevel: string;
  tunnel: {
    listen: HostPort;
    /** Absolute paths; undefined in dev (a self-signed pair is made in dataDir). */
    cert?: string;
    key?: string;
    /** Max yamux receive window per stream, bytes (key: stream_window, e.g. "4MiB"). */
    streamWindow: number;
    /** Send a ping after this long without receiving anything (ms). */
    keepaliveInterval: number;
    /** Declare the peer dead after this long without receiving anything (ms). */
    keepaliveTimeout: number;
    /** Agent must send its hello within this long (ms). */
    handshakeTimeout: number;
    /** TCP connections from one IP address still in the TLS handshake at once; more are closed at accept. */
    maxPendingPerIp: number;
    /** Raw TCP streams of agents that can carry their bytes on sealed data connections (docs/native-data-path.md). */
    sealedData: boolean;
  };
  ports: {
    bind: string;
    range: { start: number; end: number };
    perServer: number;
    reserved: number[];
  };
  mappings: {
    maxPerServer: number;
    reservedInternalPorts: number[];
  };
  servers: {
    /** Most servers one owner may register with an owner-scoped key; 0 = no limit. */
    maxPerOwner: number;
  };
  https: {
    listen: HostPort;
    cert?: string;
    key?: string;
    timeouts: { standard: number; streaming: number; download: number };
    /** Host header the app sees: the client's (`keep`) or `localhost:<internal port>` (`rewrite`). */
    hostHeader?: 'keep' | 'rewrite';
    /** Largest request head (request line + headers) accepted, bytes; bigger gets 431. */
    maxHeaderBytes?: number;
    /** Open client connections allowed per IP address (HTTPS and plain HTTP together). */
    maxConnectionsPerIp?: number;
    /** A client must finish the TLS handshake, and then each request head, within this long (ms). */
    headerTimeout?: number;
    /** Plain requests to routes without access rules are framed by the relay itself, not node:http (relay/vhost/fast-front.ts). */
    fastFront?: boolean;
  };
  http: { listen: HostPort };
  api: { listen: HostPort };
  store: { url: string };
  udp: {
    /** A flow (client addr:port) is forgotten after this long without a datagram either way (ms). */
    flowIdleTimeout: number;
    /** Live flows per server; datagrams opening more are dropped (logged). Optional (code defaults) so hand-built configs in tests stay valid. */
    maxFlowsPerServer?: number;
    /** Datagrams queued per flow and direction while its stream is backpressured; the oldest go first. */
    queueDatagrams?: number;
    /** Payload bytes queued per flow and direction (same drop-oldest rule). */
    queueBytes?: number;
  };
  /** How long SIGTERM waits for open streams before exiting (ms). */
  shutdownGrace: number;
}

export interface AgentMappingSpec {
  internalPort: number;
  externalPort?: number;
  name?: string;
  http?: boolean;
  protocol?: 'tcp' | 'udp';
  description?: string;
  /** Replica group (docs/replicas.md). */
  group?: string;
}

export interface AgentConfig {
  /** host:port of the relay's tunnel listener (TLS), or of its HTTPS listener for wss://. */
  relay: HostPort;
  /** `tls` (relay: host:port) or `websocket` (relay: wss://host[:port][/path]). */
  transport?: 'tls' | 'websocket';
  /** WebSocket path (default /_tunnel). */
  relayPath?: string;
  token: string;
  /** Absolute path of a CA bundle to verify the relay with. */
  ca?: string;
  insecure: boolean;
  /** TLS server name to verify (defaults to relay host). */
  serverName?: string;
  localHost: string;
  /** undefined = retry forever. */
  maxRetries?: number;
  logLevel: string;
  mappings: AgentMappingSpec[];
  /** Max yamux receive window per stream, bytes. */
  streamWindow: number;
  keepaliveInterval: number;
  keepaliveTimeout: number;
  /** Backoff cap between reconnects (ms). */
  maxBackoff: number;
}
