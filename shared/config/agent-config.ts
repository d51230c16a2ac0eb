/**
 * Loads agent.yaml plus CLI flags and env into a validated, deep-frozen
 * AgentConfig. Precedence: flags, then the file, then env (PORTICO_TOKEN only
 * when no token is given), then defaults.
 */
import { dirname, isAbsolute, resolve } from 'node:path';

import { ConfigSource, LEAF, listOf, type KeyPath, type Shape } from './reader.js';
import type { AgentConfig, AgentMappingSpec, HostPort } from './types.js';
import {
  ConfigValueError,
  deepFreeze,
  parseBoolean,
  parseDuration,
  parseHost,
  parseHostPort,
  parseInteger,
  parseLogLevel,
  parsePort,
  parseSize,
  parseString,
  showValue,
} from './values.js';

/** Every key agent.yaml may hold. */
export const AGENT_CONFIG_SHAPE = {
  relay: LEAF,
  token: LEAF,
  ca: LEAF,
  insecure: LEAF,
  server_name: LEAF,
  local_host: LEAF,
  max_retries: LEAF,
  log_level: LEAF,
  stream_window: LEAF,
  keepalive_interval: LEAF,
  keepalive_timeout: LEAF,
  max_backoff: LEAF,
  mappings: listOf({ internal_port: LEAF, external_port: LEAF, name: LEAF, http: LEAF, protocol: LEAF, description: LEAF, group: LEAF }),
} as const satisfies Shape;

export const AGENT_DEFAULTS: Readonly<Record<string, unknown>> = Object.freeze({
  insecure: false,
  local_host: '127.0.0.1',
  log_level: 'info',
  stream_window: '4MiB',
  keepalive_interval: '10s',
  keepalive_timeout: '30s',
  max_backoff: '30s',
});

/** Port assumed when `relay` is given as a bare host. */
export const DEFAULT_TUNNEL_PORT = 7000;

/** Mapping names become DNS labels ({owner}-{name}.{domain}). */
export const MAPPING_NAME_RE = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
export const MAPPING_NAME_MAX = 40;

/** A mapping or replica-group name: a DNS label of at most MAPPING_NAME_MAX characters (relay and agent share this rule). */
export function isMappingName(v: unknown): v is string {
  return typeof v === 'string' && v.length <= MAPPING_NAME_MAX && MAPPING_NAME_RE.test(v);
}

export interface AgentFlags {
  relay?: string;
  token?: string;
  ca?: string;
  insecure?: boolean;
  localHost?: string;
  maxRetries?: number | string;
  logLevel?: string;
}

export interface LoadAgentConfigOptions {
  configPath?: string;
  flags: AgentFlags;
  env: NodeJS.ProcessEnv;
  /** Working directory for relative CLI paths (default process.cwd()). */
  cwd?: string;
}

/** Validates a mapping name; throws ConfigValueError saying why not. */
export function parseMappingName(v: unknown): string {
  if (typeof v !== 'string') throw new ConfigValueError(`expected a name, got ${showValue(v)}`);
  if (v.length > MAPPING_NAME_MAX) throw new ConfigValueError(`${showValue(v)} is longer than ${MAPPING_NAME_MAX} characters`);
  if (!MAPPING_NAME_RE.test(v)) {
    throw new ConfigValueError(`${showValue(v)} is not a valid name; use lowercase letters, digits and "-", starting and ending with a letter or digit (it becomes part of a hostname)`);
  }
  return v;
}

function parseToken(v: unknown): string {
  const s = parseString(v);
  if (/\s/.test(s)) throw new ConfigValueError('an agent token has no spaces');
  return s;
}

function parseProtocol(v: unknown): 'tcp' | 'udp' {
  if (v === 'tcp' || v === 'udp') return v;
  throw new ConfigValueError(`${showValue(v)} is not a protocol; use "tcp" or "udp"`);
}

function parseDescription(v: unknown): string {
  if (typeof v !== 'string' && typeof v !== 'number') throw new ConfigValueError(`expected text, got ${showValue(v)}`);
  const s = String(v);
  // The relay's limit for every mapping description (relay/mappings/validate.ts): refused here at start
  // instead of by the relay at connect.
  if (s.length > 200) throw new ConfigValueError('longer than 200 characters');
  return s;
}

const positiveDuration = (v: unknown): number => {
  const n = parseDuration(v);
  if (n <= 0) throw new ConfigValueError(`must be greater than zero, got ${showValue(v)}`);
  return n;
};

/** `host:port` (TLS tunnel, default port 7000) or `wss://host[:port][/path]` (WebSocket fallback, default 443 and /_tunnel). */
export function parseRelayAddress(v: unknown): { hostPort: HostPort; transport: 'tls' | 'websocket'; path: string } {
  const s = parseString(v);
  if (/^wss:\/\//i.test(s)) {
    let url: URL;
    try {
      url = new URL(s);
    } catch {
      throw new ConfigValueError(`${showValue(v)} is not a valid wss:// URL`);
    }
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (!host) throw new ConfigValueError(`${showValue(v)} has no host`);
    return { hostPort: { host, port: url.port ? Number(url.port) : 443 }, transport: 'websocket', path: url.pathname && url.pathname !== '/' ? url.pathname : '/_tunnel' };
  }
  if (/^[a-z]+:\/\//i.test(s)) throw new ConfigValueError(`${showValue(v)}: use HOST:PORT for the TLS tunnel or wss://HOST[:PORT]/_tunnel for the WebSocket fallback`);
  return { hostPort: parseHostPort(s, { defaultPort: DEFAULT_TUNNEL_PORT }), transport: 'tls', path: '' };
}

/** Loads, validates and freezes the agent configuration. Throws PorticoError CONFIG_INVALID. */
export function loadAgentConfig(opts: LoadAgentConfigOptions): AgentConfig {
  const cwd = opts.cwd ?? process.cwd();
  const flags = opts.flags;
  const src = opts.configPath !== undefined ? ConfigSource.fromFile(resolve(cwd, opts.configPath), opts.configPath) : ConfigSource.empty();
  const configDir = opts.configPath !== undefined ? dirname(resolve(cwd, opts.configPath)) : cwd;

  src.checkShape(AGENT_CONFIG_SHAPE);
  src.throwIfProblems();

  /** Flag value (named `--flag` in messages) wins over the file, then `fallback`. */
  const pick = <T>(key: string, flagName: string, flag: unknown, parse: (raw: unknown) => T, fallback?: unknown): T | undefined => {
    if (flag !== undefined) {
      try {
        return parse(flag);
      } catch (err) {
        if (!(err instanceof ConfigValueError)) throw err;
        src.fail(key, `bad value for ${flagName} (config key "${key}"): ${err.message}`);
        return undefined;
      }
    }
    return src.read([key], parse, fallback ?? AGENT_DEFAULTS[key]);
  };

  const relayAddr = pick('relay', '--relay', flags.relay, parseRelayAddress);
  const relay = relayAddr?.hostPort;
  const envToken = opts.env.PORTICO_TOKEN !== undefined && opts.env.PORTICO_TOKEN !== '' ? opts.env.PORTICO_TOKEN : undefined;
  let token: string | undefined;
  if (flags.token === undefined && !src.has(['token']) && envToken !== undefined) {
    try {
      token = parseToken(envToken);
    } catch (err) {
      src.fail('token', `bad value for env PORTICO_TOKEN (config key "token"): ${(err as Error).message}`);
    }
  } else {
    token = pick('token', '--token', flags.token, parseToken);
  }

  // --ca and --insecure on the command line each override the other's file setting.
  const fileCa = flags.insecure === true ? undefined : src.read(['ca'], (v) => {
    const p = parseString(v);
    return isAbsolute(p) ? p : resolve(configDir, p);
  });
  let ca = fileCa;
  if (flags.ca !== undefined) {
    try {
      ca = resolve(cwd, parseString(flags.ca));
    } catch (err) {
      src.fail('ca', `bad value for --ca: ${(err as Error).message}`);
    }
  }
  const insecure = flags.ca !== undefined && flags.insecure === undefined ? false : pick('insecure', '--insecure', flags.insecure, parseBoolean);
  const serverName = pick('server_name', '--server-name', undefined, parseHost);
  const localHost = pick('local_host', '--local-host', flags.localHost, parseHost);
  const maxRetries = pick('max_retries', '--max-retries', flags.maxRetries, (v) => parseInteger(v, { min: 0 }));
  const logLevel = pick('log_level', '--log-level', flags.logLevel, parseLogLevel);
  const streamWindow = pick('stream_window', '--stream-window', undefined, (v) => {
    const n = parseSize(v);
    if (n < 256 * 1024 || n > 1024 ** 3) throw new ConfigValueError(`${showValue(v)} is out of range; allowed 256KiB..1GiB`);
    return n;
  });
  const keepaliveInterval = pick('keepalive_interval', '', undefined, positiveDuration);
  const keepaliveTimeout = pick('keepalive_timeout', '', undefined, positiveDuration);
  const maxBackoff = pick('max_backoff', '', undefined, positiveDuration);

  const mappings: AgentMappingSpec[] = [];
  const rawMappings = src.get(['mappings']);
  if (Array.isArray(rawMappings)) {
    rawMappings.forEach((item, i) => {
      const at = (k: string): KeyPath => ['mappings', i, k];
      if (item === null || typeof item !== 'object') {
        src.fail(['mappings', i], `config key "mappings[${i}]"${src.where(['mappings', i])} must be a mapping with at least internal_port, got ${showValue(item)}`);
        return;
      }
      const internalPort = src.read(at('internal_port'), parsePort);
      if (!src.has(at('internal_port'))) src.fail(at('internal_port'), `config key "mappings[${i}].internal_port" is required${src.where(['mappings', i])}`);
      const m: AgentMappingSpec = { internalPort: internalPort ?? 0 };
      const externalPort = src.read(at('external_port'), parsePort);
      if (externalPort !== undefined) m.externalPort = externalPort;
      const name = src.read(at('name'), parseMappingName);
      if (name !== undefined) m.name = name;
      const http = src.read(at('http'), parseBoolean);
      if (http !== undefined) m.http = http;
      const protocol = src.read(at('protocol'), parseProtocol);
      if (protocol !== undefined) m.protocol = protocol;
      const description = src.read(at('description'), parseDescription);
      if (description !== undefined) m.description = description;
      const group = src.read(at('group'), parseMappingName);
      if (group !== undefined) m.group = group;
      mappings.push(m);
    });
  }
  src.throwIfProblems();

  // Cross-field rules.
  const hint = src.file ? ` (or set it in ${src.file})` : '';
  if (relay === undefined) src.fail('relay', `the relay address is required: pass --relay HOST:PORT or set config key "relay"${hint}`);
  if (token === undefined) src.fail('token', `the agent token is required: pass --token T, set env PORTICO_TOKEN or set config key "token"${hint}`);
  if (ca !== undefined && insecure === true && flags.ca === undefined && flags.insecure === undefined) {
    src.fail('insecure', `config keys "ca" and "insecure"${src.where(['insecure'])} contradict each other; give one`);
  }
  if (insecure === true && flags.ca !== undefined && flags.insecure === true) src.fail('insecure', '--ca and --insecure contradict each other; give one');
  if (keepaliveTimeout! <= keepaliveInterval!) {
    src.fail('keepalive_timeout', `config key "keepalive_timeout"${src.where(['keepalive_timeout'])}: ${keepaliveTimeout}ms must be longer than "keepalive_interval" (${keepaliveInterval}ms)`);
  }
  const names = new Map<string, number>();
  const externals = new Map<string, number>();
  const internals = new Map<string, number>();
  mappings.forEach((m, i) => {
    const ik = `${m.internalPort}/${m.protocol ?? 'tcp'}`;
    const prevInternal = internals.get(ik);
    if (prevInternal !== undefined && m.internalPort > 0) {
      src.fail(['mappings', i, 'internal_port'], `config key "mappings[${i}].internal_port"${src.where(['mappings', i, 'internal_port'])}: ${ik} is already mapped by mappings[${prevInternal}]`);
    } else internals.set(ik, i);
    if (m.http === true && m.protocol === 'udp') src.fail(['mappings', i, 'http'], `config key "mappings[${i}].http"${src.where(['mappings', i, 'http'])}: an HTTPS endpoint needs protocol tcp, not udp`);
    if (m.name !== undefined) {
      const prev = names.get(m.name);
      if (prev !== undefined) src.fail(['mappings', i, 'name'], `config key "mappings[${i}].name"${src.where(['mappings', i, 'name'])}: name "${m.name}" is already used by mappings[${prev}]`);
      else names.set(m.name, i);
    }
    if (m.externalPort !== undefined) {
      const k = `${m.externalPort}/${m.protocol ?? 'tcp'}`;
      const prev = externals.get(k);
      if (prev !== undefined) {
        src.fail(['mappings', i, 'external_port'], `config key "mappings[${i}].external_port"${src.where(['mappings', i, 'external_port'])}: ${k} is already used by mappings[${prev}]`);
      } else externals.set(k, i);
    }
  });
  src.throwIfProblems();

  const config: AgentConfig = {
    relay: relay!,
    token: token!,
    insecure: insecure!,
    localHost: localHost!,
    logLevel: logLevel!,
    mappings,
    streamWindow: streamWindow!,
    keepaliveInterval: keepaliveInterval!,
    keepaliveTimeout: keepaliveTimeout!,
    maxBackoff: maxBackoff!,
  };
  if (ca !== undefined) config.ca = ca;
  if (relayAddr?.transport === 'websocket') {
    config.transport = 'websocket';
    config.relayPath = relayAddr.path;
  }
  if (serverName !== undefined) config.serverName = serverName;
  if (maxRetries !== undefined) config.maxRetries = maxRetries;
  return deepFreeze(config);
}
