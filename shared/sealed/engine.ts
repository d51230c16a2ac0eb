/**
 * The sealed data path's engine (native/sealed_pump.c) seen from
 * JavaScript: hand it a plain socket and a sealed data connection with the
 * pair's keys, and it moves their bytes on its own thread until both
 * directions ended (or one failed). Loaded once per process; `null` where
 * the addon was not built (shared/sealed/index.ts says why), and then every
 * stream stays on the TLS mux.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type net from 'node:net';
import { fileURLToPath } from 'node:url';
import { PorticoError } from '../errors.js';

/** Payload bytes per sealed unit (the receiver refuses larger units). */
export const SEALED_UNIT_BYTES = 256 * 1024;

/** One direction's AES-128-GCM key and 4-byte nonce prefix. */
export interface DirectionKey {
  key: Buffer;
  prefix: Buffer;
}

export interface PairKeys {
  /** plain -> sealed (what this side seals). */
  up: DirectionKey;
  /** sealed -> plain (what this side opens). */
  down: DirectionKey;
}

export interface PairResult {
  /** Plaintext bytes read from the plain socket and sealed. */
  up: number;
  /** Plaintext bytes opened and written to the plain socket. */
  down: number;
  /** '' when both directions ended cleanly; else why the pair was reset (e.g. TRUNCATED, BAD_TAG, ABORTED). */
  code: string;
}

interface Addon {
  init(onDone: (id: number, up: number, down: number, code: string) => void): void;
  add(id: number, plain: number, sealed: number, upKey: Buffer, upPrefix: Buffer, downKey: Buffer, downPrefix: Buffer, unit: number, preload: Buffer | null, counters: Float64Array): void;
  addUdp(id: number, udp: number, sealed: number, upKey: Buffer, upPrefix: Buffer, downKey: Buffer, downPrefix: Buffer, unit: number, preload: Buffer | null, counters: Float64Array): void;
  udpSocket(v6: boolean, bindHost: string, bindPort: number, connectHost: string | null, connectPort: number, bufferBytes: number): number;
  udpDrain(fd: number): [Buffer, string, number][];
  closeFd(fd: number): void;
  abort(id: number): void;
  udpOffload(): [number, number, number];
  firstByte(fd: number): number;
  deferAccept(fd: number, seconds: number): number;
}

/** The descriptor under a socket or server's libuv handle, or -1 (none, closed, not a descriptor). */
function fdOf(x: net.Socket | net.Server): number {
  const fd = (x as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}

/** A plain socket and a data connection being pumped. */
export class SealedPair {
  protected readonly counters: Float64Array;
  private finished: PairResult | null = null;
  readonly done: Promise<PairResult>;
  private resolve!: (r: PairResult) => void;

  constructor(
    readonly id: number,
    private readonly addon: Addon,
    /** Counter slots the engine fills: 2 (bytes up, down), 5 for a datagram pair. */
    slots = 2,
  ) {
    this.counters = new Float64Array(slots);
    this.done = new Promise((res) => (this.resolve = res));
  }

  /** Bytes sealed so far (plain -> sealed). */
  get up(): number {
    return this.finished ? this.finished.up : this.counters[0]!;
  }

  /** Bytes opened and written so far (sealed -> plain). */
  get down(): number {
    return this.finished ? this.finished.down : this.counters[1]!;
  }

  get ended(): boolean {
    return this.finished !== null;
  }

  /** Resets both sockets (no-op once ended). */
  abort(): void {
    if (!this.finished) this.addon.abort(this.id);
  }

  /** @internal */
  countersArray(): Float64Array {
    return this.counters;
  }


  /** @internal */
  settle(r: PairResult): void {
    this.finished = r;
    this.resolve(r);
  }
}

/**
 * A datagram pair: a connected UDP socket and a data connection. Bytes
 * count payloads; it also counts datagrams each way and the ones the
 * kernel refused (dropped). It ends only by abort() (code ABORTED) or a
 * failure.
 */
export class SealedUdpPair extends SealedPair {
  /** Datagrams read off the UDP socket and sealed. */
  get datagramsUp(): number {
    return this.counters[2]!;
  }

  /** Datagrams opened and sent on the UDP socket. */
  get datagramsDown(): number {
    return this.counters[3]!;
  }

  /** Datagrams the UDP socket refused (dropped). */
  get drops(): number {
    return this.counters[4]!;
  }

  constructor(id: number, addon: Addon) {
    super(id, addon, 5);
  }
}

/** Where a UDP socket the engine makes is bound, and the one peer it is connected to (none: not connected). */
export interface UdpSocketSpec {
  v6: boolean;
  bindHost: string;
  bindPort: number;
  connect?: { host: string; port: number };
  /** SO_RCVBUF and SO_SNDBUF (capped by the kernel's limits); 0 keeps the defaults. */
  bufferBytes: number;
}

export class SealedEngine {
  private readonly pairs = new Map<number, SealedPair>();
  private nextId = 1;

  constructor(private readonly addon: Addon) {
    addon.init((id, up, down, code) => {
      const pair = this.pairs.get(id);
      if (!pair) return;
      this.pairs.delete(id);
      pair.settle({ up, down, code });
    });
  }

  /**
   * UDP segmentation offload in datagram pairs since the process started: messages sent as
   * several datagrams (`UDP_SEGMENT`), pairs that fell back to one datagram a message after the
   * kernel refused one, and pairs that started without it (no kernel support, or no MTU known).
   */
  udpOffload(): { segmented: number; fallbacks: number; unavailable: number } {
    const [segmented, fallbacks, unavailable] = this.addon.udpOffload();
    return { segmented, fallbacks, unavailable };
  }

  /** Pairs handed over and not yet ended (tests check it is back to 0). */
  get live(): number {
    return this.pairs.size;
  }

  /**
   * Whether a socket Node is not reading is still quiet and open: nothing
   * waiting on it, no end, no error (checked with a peek; nothing is read).
   */
  quiet(sock: net.Socket): boolean {
    const handle = stopReading(sock);
    if (sock.destroyed || sock.readableLength > 0 || !handle || typeof handle.fd !== 'number' || handle.fd < 0) return false;
    return this.addon.firstByte(handle.fd) === -1;
  }

  /**
   * The first byte waiting on a socket Node has not read yet (0-255), or -1
   * when nothing is there yet (or it ended, failed, or has no descriptor).
   * Nothing is read.
   */
  firstByte(sock: net.Socket): number {
    const fd = fdOf(sock);
    if (sock.destroyed || sock.readableLength > 0 || fd < 0) return -1;
    const b = this.addon.firstByte(fd);
    return b >= 0 ? b : -1;
  }

  /**
   * Has the kernel hand `server`'s connections over only once their first
   * bytes are there (TCP_DEFER_ACCEPT; a silent one after about `seconds`),
   * so firstByte() finds them. False when it could not be set.
   */
  deferAccept(server: net.Server, seconds: number): boolean {
    const fd = fdOf(server);
    if (fd < 0) return false;
    return this.addon.deferAccept(fd, Math.max(1, Math.ceil(seconds))) === 0;
  }

  /**
   * A UDP socket with SO_REUSEPORT, bound (and connected when `connect` is
   * given); its descriptor, for node:dgram (`bind({ fd })`) or addUdp().
   * Throws an error with the errno's name as `code` (EADDRINUSE, ...).
   */
  udpSocket(spec: UdpSocketSpec): number {
    const fd = this.addon.udpSocket(spec.v6, spec.bindHost, spec.bindPort, spec.connect?.host ?? null, spec.connect?.port ?? 0, spec.bufferBytes);
    if (fd >= 0) return fd;
    const code = ERRNO_NAMES[-fd] ?? `errno ${-fd}`;
    const err: NodeJS.ErrnoException = new Error(`udp socket ${spec.bindHost}:${spec.bindPort}${spec.connect ? ` -> ${spec.connect.host}:${spec.connect.port}` : ''}: ${code}`);
    err.code = code;
    throw err;
  }

  /**
   * Reads and returns what is queued on a socket udpSocket() just made:
   * between its bind and its connect, the kernel may have handed it any
   * client's datagram (it was an unconnected member of the port's
   * SO_REUSEPORT group). The caller routes them as if the public socket
   * had received them.
   */
  udpDrain(fd: number): { data: Buffer; address: string; port: number }[] {
    return this.addon.udpDrain(fd).map(([data, address, port]) => ({ data, address, port }));
  }

  /** Closes a descriptor udpSocket() made and nothing else owns (addUdp() works on its own copy). */
  closeFd(fd: number): void {
    this.addon.closeFd(fd);
  }

  /**
   * Hands a UDP socket's descriptor (the engine works on a copy; the caller
   * keeps and closes its own) and a data connection to the engine as a
   * datagram pair. `sealed` is taken over as in add().
   */
  addUdp(udpFd: number, sealed: net.Socket, keys: PairKeys, preload: Buffer | null = null): SealedUdpPair {
    const sealedFd = takeOver(sealed);
    const pair = new SealedUdpPair(this.allocId(), this.addon);
    this.addon.addUdp(pair.id, udpFd, sealedFd, keys.up.key, keys.up.prefix, keys.down.key, keys.down.prefix, SEALED_UNIT_BYTES, preload && preload.length > 0 ? preload : null, pair.countersArray());
    this.pairs.set(pair.id, pair);
    return pair;
  }

  private allocId(): number {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffff_fff0 ? 1 : this.nextId + 1;
    return id;
  }

  /**
   * Hands `plain` and `sealed` to the engine. Neither may have been read
   * by Node past `preload` (bytes already read off `sealed`): both are
   * paused here and their reading stopped. The sockets stay open in Node
   * until the pair ends; the caller destroys them then (and a caller that
   * destroys one earlier should abort the pair).
   */
  add(plain: net.Socket, sealed: net.Socket, keys: PairKeys, preload: Buffer | null = null): SealedPair {
    const plainFd = takeOver(plain);
    const sealedFd = takeOver(sealed);
    const id = this.allocId();
    const pair = new SealedPair(id, this.addon);
    this.addon.add(id, plainFd, sealedFd, keys.up.key, keys.up.prefix, keys.down.key, keys.down.prefix, SEALED_UNIT_BYTES, preload && preload.length > 0 ? preload : null, pair.countersArray());
    this.pairs.set(id, pair);
    return pair;
  }
}

const ERRNO_NAMES: Record<number, string> = { 13: 'EACCES', 22: 'EINVAL', 23: 'ENFILE', 24: 'EMFILE', 97: 'EAFNOSUPPORT', 98: 'EADDRINUSE', 99: 'EADDRNOTAVAIL', 101: 'ENETUNREACH' };

/**
 * Stops Node reading a socket and returns its descriptor. A socket whose
 * readable buffer holds bytes cannot be handed over (they would be lost).
 */
function takeOver(sock: net.Socket): number {
  const handle = stopReading(sock);
  if (!handle || typeof handle.fd !== 'number' || handle.fd < 0) throw new PorticoError('INTERNAL', 'socket has no descriptor to hand to the sealed engine');
  if (sock.readableLength > 0) throw new PorticoError('INTERNAL', 'socket has unread bytes in Node; cannot hand it to the sealed engine');
  return handle.fd;
}

type RawHandle = { fd?: number; reading?: boolean; readStop?: () => number };

/**
 * Stops Node reading `sock`, for good: pauses it, stops libuv now (pause()
 * alone lets one more read land in Node's buffer), and makes its _read a
 * no-op — Node's stream machinery calls read(0) on later ticks by itself
 * (maybeReadMore, a scheduled resume), and each would start libuv reading
 * again and take bytes meant for the engine (seen: a data connection whose
 * units the relay's JavaScript swallowed, the stream stalled).
 */
export function stopReading(sock: net.Socket): RawHandle | undefined {
  sock.pause();
  (sock as unknown as { _read: () => void })._read = noRead;
  const handle = (sock as unknown as { _handle?: RawHandle })._handle;
  if (handle?.reading) {
    handle.reading = false;
    handle.readStop?.();
  }
  return handle;
}

const noRead = (): void => undefined;

let loaded: { engine: SealedEngine | null; problem: string } | undefined;

/** The addon's path: built by scripts/build-native.mjs next to the compiled JavaScript. */
export function addonPath(): string {
  return fileURLToPath(new URL('../../native/portico_sealed.node', import.meta.url));
}

/** The process's engine, or null with the reason (`sealedProblem()`). PORTICO_NATIVE=0 turns it off. */
export function sealedEngine(): SealedEngine | null {
  loaded ??= load();
  return loaded.engine;
}

export function sealedProblem(): string {
  loaded ??= load();
  return loaded.problem;
}

function load(): { engine: SealedEngine | null; problem: string } {
  if (process.env.PORTICO_NATIVE === '0') return { engine: null, problem: 'turned off (PORTICO_NATIVE=0)' };
  const file = addonPath();
  if (!existsSync(file)) return { engine: null, problem: `not built (${file} missing; npm run build compiles it where a C compiler and Node's headers exist)` };
  try {
    const addon = createRequire(import.meta.url)(file) as Addon;
    return { engine: new SealedEngine(addon), problem: '' };
  } catch (err) {
    return { engine: null, problem: `cannot load ${file}: ${(err as Error).message}` };
  }
}
