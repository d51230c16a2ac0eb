/**
 * Typed access to the protobuf messages in proto/portico/v1/*.proto.
 * The .proto files are the source of truth; protobufjs loads them once at
 * start-up (reflection, with generated encoders) and the interfaces below are
 * their TypeScript view (test/unit/proto.test.ts checks the two agree).
 */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import protobuf from 'protobufjs';

/** Highest and lowest control-protocol versions this build speaks. */
export const PROTOCOL_VERSION = 1;
export const MIN_PROTOCOL_VERSION = 1;

export enum Protocol {
  TCP = 0,
  UDP = 1,
}

export enum StreamKind {
  TCP = 0,
  UDP = 1,
  HTTP = 2,
}

export interface MappingSpec {
  internalPort: number;
  externalPort?: number;
  name?: string;
  http?: boolean;
  protocol?: Protocol;
  description?: string;
  group?: string;
}

export interface HealthCheckMsg {
  enabled?: boolean;
  path?: string;
  intervalSeconds?: number;
  timeoutSeconds?: number;
  expectedStatus?: number;
  retries?: number;
}

export interface MappingMsg {
  id: string;
  internalPort: number;
  externalPort: number;
  protocol?: Protocol;
  name?: string;
  http?: boolean;
  description?: string;
  rawUrl?: string;
  httpsUrls?: string[];
  source?: string;
  healthCheck?: HealthCheckMsg | null;
}

export interface ErrorMsg {
  /** Wire number of an ErrorCode (shared/errors.ts). */
  code: number;
  message: string;
  detailsJson?: string;
}

export interface Hello {
  maxVersion: number;
  minVersion: number;
  token: string;
  agentVersion?: string;
  hostname?: string;
  mappings?: MappingSpec[];
  localHost?: string;
  sealedData?: boolean;
  sealedUdp?: boolean;
}

export interface Welcome {
  version: number;
  serverId: string;
  owner: string;
  publicHostname: string;
  ports: number[];
  mappings: MappingMsg[];
  udp?: boolean;
  sessionId?: string;
  relayVersion?: string;
  rejected?: ErrorMsg[];
  sealedData?: boolean;
}

export interface MappingsUpdate {
  mappings: MappingMsg[];
  udp?: boolean;
  ports?: number[];
}

export interface HealthStateMsg {
  mappingId: string;
  status: string;
  lastCheckMs?: number;
  consecutiveFailures?: number;
  detail?: string;
}

export interface HealthReport {
  states: HealthStateMsg[];
}

export interface Shutdown {
  reason?: string;
  graceMs?: number;
}

/** The one-of body of an Envelope: exactly one key set. */
export type EnvelopeBody =
  | { hello: Hello }
  | { welcome: Welcome }
  | { error: ErrorMsg }
  | { mappingsUpdate: MappingsUpdate }
  | { healthReport: HealthReport }
  | { ack: Record<string, never> }
  | { shutdown: Shutdown };

export type Envelope = { id?: number; replyTo?: number } & EnvelopeBody;
export type EnvelopeKind = 'hello' | 'welcome' | 'error' | 'mappingsUpdate' | 'healthReport' | 'ack' | 'shutdown';

export interface StreamHeader {
  mappingId: string;
  internalPort: number;
  kind?: StreamKind;
  clientAddress?: string;
  clientPort?: number;
  publicPort?: number;
  sealedId?: Uint8Array;
  poolId?: Uint8Array;
}

export interface OpenResult {
  ok: boolean;
  code?: number;
  message?: string;
  localAddress?: string;
  localPort?: number;
  unsealed?: boolean;
}

/** Directory holding portico/v1/*.proto (works from src and from dist/). */
export function protoDir(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  // src: <root>/proto/ ; compiled: <root>/dist/proto/
  return here.includes(`${join('dist', 'proto')}`) ? join(here, '..', '..', 'proto') : here;
}

function loadRoot(): protobuf.Root {
  const dir = protoDir();
  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string) => join(dir, target);
  root.loadSync(['portico/v1/control.proto', 'portico/v1/stream.proto']);
  root.resolveAll();
  return root;
}

export const protoRoot = loadRoot();

/** A message codec: encode to a Uint8Array, decode from bytes (throws on malformed input). */
export interface Codec<T> {
  encode(msg: T): Uint8Array;
  decode(bytes: Uint8Array): T;
  type: protobuf.Type;
}

function codec<T>(name: string): Codec<T> {
  const type = protoRoot.lookupType(`portico.v1.${name}`);
  return {
    type,
    encode: (msg: T) => type.encode(msg as unknown as Record<string, unknown>).finish(),
    decode: (bytes: Uint8Array) => type.decode(bytes) as unknown as T,
  };
}

export const EnvelopeCodec = codec<Envelope>('Envelope');
export const StreamHeaderCodec = codec<StreamHeader>('StreamHeader');
export const OpenResultCodec = codec<OpenResult>('OpenResult');

/** Which body an envelope carries (protobufjs exposes the oneof name as `body`). */
export function envelopeKind(env: Envelope): EnvelopeKind | undefined {
  return (env as unknown as { body?: EnvelopeKind }).body;
}
