/**
 * The control channel: typed protobuf envelopes on the first mux stream,
 * request/response by correlation id with timeouts, and a handler table keyed
 * by message kind. Knows nothing about relay or agent roles.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { PorticoError, errorCodeFromWire, errorCodeToWire, isPorticoError } from '../errors.js';
import { FrameDecoder, encodeFrame } from '../framing/length-prefixed.js';
import { EnvelopeCodec, envelopeKind, type Envelope, type EnvelopeBody, type EnvelopeKind } from '../../proto/index.js';

export type ControlHandler = (env: Envelope) => EnvelopeBody | void | Promise<EnvelopeBody | void>;
export type ControlHandlers = Partial<Record<EnvelopeKind, ControlHandler>>;

/**
 * Control messages we may have queued that the peer has not read (its
 * stream window is full). A peer that keeps sending requests but reads no
 * replies is disconnected at this point instead of growing our memory.
 */
export const CONTROL_OUTPUT_LIMIT = 4 * 1024 * 1024;

interface Pending {
  resolve: (env: Envelope) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** Turns an Error envelope body into a PorticoError. */
export function errorFromEnvelope(env: Envelope): PorticoError {
  const e = 'error' in env ? env.error : undefined;
  let details: Record<string, unknown> | undefined;
  if (e?.detailsJson) {
    try {
      details = JSON.parse(e.detailsJson) as Record<string, unknown>;
    } catch {
      details = undefined;
    }
  }
  return new PorticoError(errorCodeFromWire(e?.code ?? 0), e?.message || 'unknown error', details);
}

/** An Error envelope body for an error (PorticoError keeps its code; anything else is INTERNAL). */
export function errorBody(err: unknown): EnvelopeBody {
  if (isPorticoError(err)) {
    return { error: { code: errorCodeToWire(err.code), message: err.message, detailsJson: err.details ? JSON.stringify(err.details) : '' } };
  }
  return { error: { code: errorCodeToWire('INTERNAL'), message: 'internal error', detailsJson: '' } };
}

export class ControlChannel extends EventEmitter {
  private readonly decoder = new FrameDecoder();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private handlers: ControlHandlers = {};
  private closedErr: Error | null = null;

  constructor(
    readonly stream: Duplex,
    private readonly requestTimeout = 10_000,
  ) {
    super();
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', (err) => this.shutdown(err));
    stream.on('end', () => {
      this.shutdown(new PorticoError('PROTOCOL_ERROR', 'control stream ended'));
      // The peer is done talking: finish our side too so the stream is freed.
      if (!stream.writableEnded) stream.end();
    });
    stream.on('close', () => this.shutdown(new PorticoError('PROTOCOL_ERROR', 'control stream closed')));
    // The handshake reads the hello with readFrame(), which pauses the stream
    // explicitly; a 'data' listener alone does not resume an explicit pause.
    stream.resume();
  }

  /** Replaces the handler table. */
  setHandlers(handlers: ControlHandlers): void {
    this.handlers = handlers;
  }

  get closed(): boolean {
    return this.closedErr !== null;
  }

  /** Sends a one-way message (or a reply when replyTo is set). */
  send(body: EnvelopeBody, replyTo = 0): void {
    this.write({ ...body, id: 0, replyTo });
  }

  /** Sends a request and resolves with the reply; an Error reply rejects with its PorticoError. */
  request(body: EnvelopeBody, timeoutMs = this.requestTimeout): Promise<Envelope> {
    if (this.closedErr) return Promise.reject(this.closedErr);
    const id = this.nextId++;
    if (this.nextId > 0xffffffff) this.nextId = 1;
    return new Promise<Envelope>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new PorticoError('TIMEOUT', `no reply to ${Object.keys(body)[0]} within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.pending.set(id, { resolve, reject, timer });
      this.write({ ...body, id, replyTo: 0 });
    });
  }

  /** Ends the control stream (the peer sees it close). */
  close(): void {
    this.shutdown(new PorticoError('PROTOCOL_ERROR', 'control channel closed'));
    this.stream.end();
  }

  private write(env: Envelope): void {
    if (this.closedErr || this.stream.destroyed || this.stream.writableEnded) return;
    this.stream.write(encodeFrame(EnvelopeCodec.encode(env)));
    const queued = this.stream.writableLength;
    if (queued > CONTROL_OUTPUT_LIMIT) this.fail(new PorticoError('PROTOCOL_ERROR', `the peer does not read the control stream: ${queued} bytes of messages wait for it (limit ${CONTROL_OUTPUT_LIMIT})`));
  }

  private onData(chunk: Buffer): void {
    let frames: Buffer[];
    try {
      frames = this.decoder.feed(chunk);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    for (const f of frames) {
      let env: Envelope;
      try {
        env = EnvelopeCodec.decode(f);
      } catch (err) {
        this.fail(new PorticoError('PROTOCOL_ERROR', `malformed control message: ${(err as Error).message}`));
        return;
      }
      this.dispatch(env);
    }
  }

  private dispatch(env: Envelope): void {
    if (env.replyTo) {
      const p = this.pending.get(env.replyTo);
      if (!p) return; // a late reply after its timeout
      this.pending.delete(env.replyTo);
      clearTimeout(p.timer);
      if (envelopeKind(env) === 'error') p.reject(errorFromEnvelope(env));
      else p.resolve(env);
      return;
    }
    const kind = envelopeKind(env);
    const handler = kind ? this.handlers[kind] : undefined;
    if (!handler) {
      if (env.id) this.send({ error: { code: errorCodeToWire('PROTOCOL_ERROR'), message: `unexpected message ${kind ?? '(empty)'}`, detailsJson: '' } }, env.id);
      this.emit('unhandled', env);
      return;
    }
    Promise.resolve()
      .then(() => handler(env))
      .then(
        (reply) => {
          if (env.id) this.send(reply ?? { ack: {} }, env.id);
        },
        (err: unknown) => {
          if (env.id) this.send(errorBody(err), env.id);
          else this.emit('handlerError', err);
        },
      );
  }

  private fail(err: Error): void {
    this.shutdown(err);
    this.stream.destroy(err);
  }

  private shutdown(err: Error): void {
    if (this.closedErr) return;
    this.closedErr = err;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
      this.pending.delete(id);
    }
    this.emit('close', err);
  }
}
