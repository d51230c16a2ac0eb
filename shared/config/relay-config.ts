/**
 * Loads relay.yaml into a validated, deep-frozen RelayConfig. Three passes:
 * unknown keys, then every value through its parser, then cross-field rules.
 * `--dev` fills every unset key from DEV_DEFAULTS; keys in the file win;
 * `--data-dir` and `--log-level` override the file.
 */
import { dirname, isAbsolute, resolve } from 'node:path';

import { ConfigSource, LEAF, type Shape } from './reader.js';
import type { HostPort, RelayConfig } from './types.js';
import {
  ConfigValueError,
  deepFreeze,
  formatHostPort,
  isHostname,
  parseBoolean,
  parseDuration,
  parseHost,
  parseHostPort,
  parseInteger,
  parseLogLevel,
  parsePortList,
  parsePortRange,
  parseSize,
  parseString,
  showValue,
} from './values.js';

/** Every key relay.yaml may hold. */
export const RELAY_CONFIG_SHAPE = {
  data_dir: LEAF,
  domain: LEAF,
  public_hostname: LEAF,
  log_level: LEAF,
  shutdown_grace: LEAF,
  tunnel: {
    listen: LEAF,
    cert: LEAF,
    key: LEAF,
    stream_window: LEAF,
    keepalive_interval: LEAF,
    keepalive_timeout: LEAF,
    handshake_timeout: LEAF,
    max_pending_per_ip: LEAF,
    sealed_data: LEAF,
  },
  ports: { bind: LEAF, range: LEAF, per_server: LEAF, reserved: LEAF },
  mappings: { max_per_server: LEAF, reserved_internal_ports: LEAF },
  servers: { max_per_owner: LEAF },
  https: {
    listen: LEAF,
    cert: LEAF,
    key: LEAF,
    timeouts: { standard: LEAF, streaming: LEAF, download: LEAF },
    host_header: LEAF,
    max_header_bytes: LEAF,
    max_connections_per_ip: LEAF,
    header_timeout: LEAF,
    fast_front: LEAF,
  },
  http: { listen: LEAF },
  api: { listen: LEAF },
  store: { url: LEAF },
  udp: { flow_idle_timeout: LEAF, max_flows_per_server: LEAF, queue_datagrams: LEAF, queue_bytes: LEAF },
} as const satisfies Shape;

/**
 * Defaults for keys left unset, as they would be written in YAML. `domain`,
 * `tunnel.cert/key` and `https.cert/key` have none outside --dev.
 */
export const RELAY_DEFAULTS: Readonly<Record<string, unknown>> = Object.freeze({
  data_dir: '/var/lib/portico',
  log_level: 'info',
  shutdown_grace: '30s',
  'tunnel.listen': '0.0.0.0:7000',
  'tunnel.stream_window': '4MiB',
  'tunnel.keepalive_interval': '10s',
  'tunnel.keepalive_timeout': '30s',
  'tunnel.handshake_timeout': '10s',
  'tunnel.max_pending_per_ip': 64,
  'tunnel.sealed_data': true,
  'ports.bind': '0.0.0.0',
  'ports.range': '20000-39999',
  'ports.per_server': 20,
  'ports.reserved': [22, 80, 443],
  'mappings.max_per_server': 40,
  'mappings.reserved_internal_ports': [22, 5901, 6006, 6637, 7088, 8888],
  'servers.max_per_owner': 0,
  'https.listen': '0.0.0.0:443',
  'https.timeouts.standard': '60s',
  'https.timeouts.streaming': '10m',
  'https.timeouts.download': '30m',
  'https.host_header': 'keep',
  'https.max_header_bytes': '32KiB',
  'https.max_connections_per_ip': 256,
  'https.header_timeout': '8s',
  'https.fast_front': true,
  'http.listen': '0.0.0.0:80',
  'api.listen': '127.0.0.1:7400',
  'store.url': 'sqlite:portico.db',
  'udp.flow_idle_timeout': '60s',
  'udp.max_flows_per_server': 1024,
  'udp.queue_datagrams': 256,
  'udp.queue_bytes': '256KiB',
});

/** What `--dev` puts in every unset key (on top of RELAY_DEFAULTS). data_dir is relative to the working directory. */
export const DEV_DEFAULTS: Readonly<Record<string, unknown>> = Object.freeze({
  data_dir: './.portico',
  domain: 'localhost',
  public_hostname: 'connect01.localhost',
  'tunnel.listen': '127.0.0.1:7000',
  'ports.bind': '127.0.0.1',
  'ports.range': '20000-20999',
  'https.listen': '127.0.0.1:8443',
  'http.listen': '127.0.0.1:8880',
  'api.listen': '127.0.0.1:7400',
});

export interface LoadRelayConfigOptions {
  configPath?: string;
  dev: boolean;
  /** --data-dir; relative to cwd. */
  dataDir?: string;
  /** --log-level. */
  logLevel?: string;
  /** Working directory for relative CLI paths and the dev data_dir (default process.cwd()). */
  cwd?: string;
}

const MIN_STREAM_WINDOW = 256 * 1024; // yamux's initial window; a smaller max cannot be honoured
const MAX_STREAM_WINDOW = 1024 ** 3;

function parseHostname(v: unknown): string {
  const s = parseString(v);
  if (!isHostname(s)) throw new ConfigValueError(`${showValue(v)} is not a DNS name (no scheme, port or path; e.g. "example.com")`);
  return s.toLowerCase().replace(/\.$/, '');
}

function parseStoreUrl(v: unknown): string {
  const s = parseString(v);
  if (/^sqlite:.+/.test(s) || /^postgres(ql)?:\/\/.+/.test(s)) return s;
  throw new ConfigValueError(`${showValue(v)} is not a store URL; use "sqlite:portico.db" (relative to data_dir), "sqlite:/abs/path.db" or "postgres://…"`);
}

function parseHostHeaderMode(v: unknown): 'keep' | 'rewrite' {
  const s = parseString(v);
  if (s === 'keep' || s === 'rewrite') return s;
  throw new ConfigValueError(`${showValue(v)} is not a Host header mode; use "keep" (the client's Host) or "rewrite" (localhost:<internal port>)`);
}

const positive =
  (parse: (v: unknown) => number, what: string) =>
  (v: unknown): number => {
    const n = parse(v);
    if (n <= 0) throw new ConfigValueError(`${what} must be greater than zero, got ${showValue(v)}`);
    return n;
  };

const isWildcard = (h: string): boolean => h === '0.0.0.0' || h === '::' || h === '';

/** True when two listeners would collide (same port, same or wildcard host). */
function overlaps(a: HostPort, b: HostPort): boolean {
  return a.port !== 0 && a.port === b.port && (a.host === b.host || isWildcard(a.host) || isWildcard(b.host));
}

/** Loads, validates and freezes the relay configuration. Throws PorticoError CONFIG_INVALID. */
export function loadRelayConfig(opts: LoadRelayConfigOptions): RelayConfig {
  const cwd = opts.cwd ?? process.cwd();
  const src = opts.configPath !== undefined ? ConfigSource.fromFile(resolve(cwd, opts.configPath), opts.configPath) : ConfigSource.empty();
  const configDir = opts.configPath !== undefined ? dirname(resolve(cwd, opts.configPath)) : cwd;
  const dev = opts.dev;

  // Pass 1: structure and unknown keys.
  src.checkShape(RELAY_CONFIG_SHAPE);
  src.throwIfProblems();

  // Pass 2: every value.
  const fallback = (key: string): unknown => (dev && key in DEV_DEFAULTS ? DEV_DEFAULTS[key] : RELAY_DEFAULTS[key]);
  // Placeholder on failure is never used: problems are thrown before the result is built.
  const val = <T>(key: string, parse: (raw: unknown) => T): T => src.read(key.split('.'), parse, fallback(key)) as T;
  const fileOrDefaultPath = (key: string, base: string) => (raw: unknown) => {
    const p = parseString(raw);
    return isAbsolute(p) ? p : resolve(src.has(key.split('.')) ? configDir : base, p);
  };

  const listen = (key: string) => val(key, (v) => parseHostPort(v, { allowZero: true }));
  const duration = (key: string) => val(key, positive(parseDuration, 'a duration'));

  let dataDir = val('data_dir', fileOrDefaultPath('data_dir', cwd));
  if (opts.dataDir !== undefined) {
    try {
      dataDir = resolve(cwd, parseString(opts.dataDir));
    } catch (err) {
      src.fail('data_dir', `bad value for --data-dir: ${(err as Error).message}`);
    }
  }
  let logLevel = val('log_level', parseLogLevel);
  if (opts.logLevel !== undefined) {
    try {
      logLevel = parseLogLevel(opts.logLevel);
    } catch (err) {
      src.fail('log_level', `bad value for --log-level: ${(err as Error).message}`);
    }
  }
  const domain = val('domain', parseHostname);
  const publicHostname = val('public_hostname', parseHost);
  const shutdownGrace = val('shutdown_grace', parseDuration);

  const tunnel = {
    listen: listen('tunnel.listen'),
    cert: val('tunnel.cert', fileOrDefaultPath('tunnel.cert', configDir)),
    key: val('tunnel.key', fileOrDefaultPath('tunnel.key', configDir)),
    streamWindow: val('tunnel.stream_window', (v) => {
      const n = parseSize(v);
      if (n < MIN_STREAM_WINDOW || n > MAX_STREAM_WINDOW) throw new ConfigValueError(`${showValue(v)} is out of range; allowed 256KiB..1GiB`);
      return n;
    }),
    keepaliveInterval: duration('tunnel.keepalive_interval'),
    keepaliveTimeout: duration('tunnel.keepalive_timeout'),
    handshakeTimeout: duration('tunnel.handshake_timeout'),
    maxPendingPerIp: val('tunnel.max_pending_per_ip', (v) => parseInteger(v, { min: 1, max: 1_000_000 })),
    sealedData: val('tunnel.sealed_data', parseBoolean),
  };
  const ports = {
    bind: val('ports.bind', parseHost),
    range: val('ports.range', parsePortRange),
    perServer: val('ports.per_server', (v) => parseInteger(v, { min: 10, max: 40 })),
    reserved: val('ports.reserved', parsePortList),
  };
  const mappings = {
    maxPerServer: val('mappings.max_per_server', (v) => parseInteger(v, { min: 1, max: 10_000 })),
    reservedInternalPorts: val('mappings.reserved_internal_ports', parsePortList),
  };
  const servers = {
    maxPerOwner: val('servers.max_per_owner', (v) => parseInteger(v, { min: 0, max: 1_000_000 })),
  };
  const https = {
    listen: listen('https.listen'),
    cert: val('https.cert', fileOrDefaultPath('https.cert', configDir)),
    key: val('https.key', fileOrDefaultPath('https.key', configDir)),
    timeouts: {
      standard: duration('https.timeouts.standard'),
      streaming: duration('https.timeouts.streaming'),
      download: duration('https.timeouts.download'),
    },
    hostHeader: val('https.host_header', parseHostHeaderMode),
    maxHeaderBytes: val('https.max_header_bytes', (v) => {
      const n = parseSize(v);
      if (n < 1024 || n > 1024 * 1024) throw new ConfigValueError(`${showValue(v)} is out of range; allowed 1KiB..1MiB`);
      return n;
    }),
    maxConnectionsPerIp: val('https.max_connections_per_ip', (v) => parseInteger(v, { min: 1, max: 1_000_000 })),
    headerTimeout: duration('https.header_timeout'),
    fastFront: val('https.fast_front', parseBoolean),
  };
  const http = { listen: listen('http.listen') };
  const api = { listen: listen('api.listen') };
  const store = { url: val('store.url', parseStoreUrl) };
  const udp = {
    flowIdleTimeout: duration('udp.flow_idle_timeout'),
    // Each flow is one mux stream; the agent accepts at most 4096 streams per tunnel, TCP included.
    maxFlowsPerServer: val('udp.max_flows_per_server', (v) => parseInteger(v, { min: 1, max: 4000 })),
    queueDatagrams: val('udp.queue_datagrams', (v) => parseInteger(v, { min: 1, max: 65_536 })),
    queueBytes: val('udp.queue_bytes', (v) => {
      const n = parseSize(v);
      if (n < 64 * 1024 || n > 64 * 1024 * 1024) throw new ConfigValueError(`${showValue(v)} is out of range; allowed 64KiB..64MiB (one datagram may be 64 KiB)`);
      return n;
    }),
  };
  src.throwIfProblems();

  // Pass 3: cross-field rules.
  const where = (key: string) => src.where(key.split('.'));
  const orDev = 'or use --dev for a local setup with self-signed certificates';
  for (const section of ['tunnel', 'https'] as const) {
    const { cert, key } = section === 'tunnel' ? tunnel : https;
    if ((cert === undefined) !== (key === undefined)) {
      const missing = cert === undefined ? `${section}.cert` : `${section}.key`;
      const given = cert === undefined ? `${section}.key` : `${section}.cert`;
      src.fail(missing, `config key "${missing}" is missing${where(given)}: "${given}" is set, so "${missing}" must be too (give both or neither)`);
    } else if (!dev && cert === undefined) {
      src.fail(`${section}.cert`, `config keys "${section}.cert" and "${section}.key" are required${src.file ? ` in ${src.file}` : ''} (a certificate and private key in PEM); ${orDev}`);
    }
  }
  if (!dev && domain === undefined) {
    src.fail('domain', `config key "domain" is required${src.file ? ` in ${src.file}` : ''} (HTTPS endpoints are https://<token>.secure.<domain>); ${orDev}`);
  }
  if (tunnel.keepaliveTimeout <= tunnel.keepaliveInterval) {
    src.fail(
      'tunnel.keepalive_timeout',
      `config key "tunnel.keepalive_timeout"${where('tunnel.keepalive_timeout')}: ${tunnel.keepaliveTimeout}ms must be longer than "tunnel.keepalive_interval" (${tunnel.keepaliveInterval}ms)`,
    );
  }

  // Listeners must not collide with each other.
  const listeners: Array<[string, HostPort]> = [
    ['tunnel.listen', tunnel.listen],
    ['https.listen', https.listen],
    ['http.listen', http.listen],
    ['api.listen', api.listen],
  ];
  for (let i = 0; i < listeners.length; i++) {
    for (let j = 0; j < i; j++) {
      const [ka, a] = listeners[i]!;
      const [kb, b] = listeners[j]!;
      if (overlaps(a, b)) src.fail(ka, `config key "${ka}"${where(ka)}: ${formatHostPort(a)} uses the same port as "${kb}" (${formatHostPort(b)})`);
    }
  }

  // The relay's own listeners inside the public range are never handed out.
  const reserved = new Set(ports.reserved);
  for (const [, hp] of listeners) {
    if (hp.port >= ports.range.start && hp.port <= ports.range.end && overlaps(hp, { host: ports.bind, port: hp.port })) reserved.add(hp.port);
  }
  let usable = 0;
  for (let p = ports.range.start; p <= ports.range.end; p++) if (!reserved.has(p)) usable++;
  if (usable < ports.perServer) {
    src.fail(
      'ports.range',
      `config key "ports.range"${where('ports.range')}: ${ports.range.start}-${ports.range.end} holds ${usable} usable port${usable === 1 ? '' : 's'} after ports.reserved, fewer than one block of ports.per_server = ${ports.perServer}`,
    );
  }
  src.throwIfProblems();

  const config: RelayConfig = {
    dataDir,
    domain: domain ?? 'localhost',
    publicHostname: publicHostname ?? domain!,
    dev,
    logLevel,
    tunnel,
    ports: { ...ports, reserved: [...reserved].sort((a, b) => a - b) },
    mappings,
    servers,
    https,
    http,
    api,
    store,
    udp,
    shutdownGrace,
  };
  if (config.tunnel.cert === undefined) delete config.tunnel.cert;
  if (config.tunnel.key === undefined) delete config.tunnel.key;
  if (config.https.cert === undefined) delete config.https.cert;
  if (config.https.key === undefined) delete config.https.key;
  return deepFreeze(config);
}
