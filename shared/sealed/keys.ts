/**
 * Keys and the opening words of a sealed data connection
 * (docs/native-data-path.md). Everything secret comes from the tunnel's TLS
 * session (RFC 5705 / 8446 exporter), bound to a per-stream random id, so
 * it is unique per session and stream and never crosses the wire.
 *
 * Preamble the agent sends on a new data connection (36 bytes):
 *   "PSD1" (no TLS record starts with 'P') ‖ id (16) ‖ proof (16)
 * The relay accepts it only when the proof matches the one it derived for
 * that id and answers one byte (SEALED_ACK); then sealed units follow
 * (native/sealed_pump.c). Without the answer the agent carries the stream
 * on the mux instead.
 */
import { randomBytes } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { PairKeys } from './engine.js';

export const SEALED_MAGIC = Buffer.from('PSD1', 'latin1');
export const SEALED_ID_BYTES = 16;
const PROOF_BYTES = 16;
export const PREAMBLE_BYTES = SEALED_MAGIC.length + SEALED_ID_BYTES + PROOF_BYTES;
/** The relay's one-byte answer to a matched preamble: the agent hands the connection over only after it. */
export const SEALED_ACK = 0x4b; // 'K'
const LABEL = 'EXPORTER-portico-sealed-v1';

export interface StreamSecrets {
  /** Shows the relay that the data connection comes from the agent of this TLS session. */
  proof: Buffer;
  agentToRelay: { key: Buffer; prefix: Buffer };
  relayToAgent: { key: Buffer; prefix: Buffer };
}

export function newSealedId(): Buffer {
  return randomBytes(SEALED_ID_BYTES);
}

export function streamSecrets(tls: TLSSocket, id: Buffer): StreamSecrets {
  const m = tls.exportKeyingMaterial(PROOF_BYTES + 16 + 16 + 4 + 4, LABEL, id);
  return {
    proof: m.subarray(0, 16),
    agentToRelay: { key: m.subarray(16, 32), prefix: m.subarray(48, 52) },
    relayToAgent: { key: m.subarray(32, 48), prefix: m.subarray(52, 56) },
  };
}

/** The engine's view: the relay seals relay->agent and opens agent->relay; the agent the reverse. */
export function pairKeys(s: StreamSecrets, side: 'relay' | 'agent'): PairKeys {
  return side === 'relay' ? { up: s.relayToAgent, down: s.agentToRelay } : { up: s.agentToRelay, down: s.relayToAgent };
}

export function preamble(id: Buffer, s: StreamSecrets): Buffer {
  return Buffer.concat([SEALED_MAGIC, id, s.proof]);
}
