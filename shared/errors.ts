/**
 * The one list of Portico error codes. The API returns them as `error.code`,
 * the control channel carries them as the `ErrorCode` enum (proto/), and
 * docs/errors.md documents each one (a unit test keeps the three in step).
 */
export const ERROR_CODES = {
  UNAUTHORIZED: { status: 401, wire: 1, doc: 'Missing or wrong API key, agent token, or HTTPS endpoint login (user API key, password or session cookie).' },
  NOT_FOUND: { status: 404, wire: 2, doc: 'No such server, mapping, key or route (also returned for resources of another owner).' },
  VALIDATION_FAILED: { status: 400, wire: 3, doc: 'A request field or config key has a bad value; `details.field` names it.' },
  PORT_ALREADY_MAPPED: { status: 409, wire: 4, doc: 'The external port is already used by another mapping of this server.' },
  PORT_RESERVED: { status: 409, wire: 5, doc: 'The internal port is a platform port (`mappings.reserved_internal_ports`) or the external port is in `ports.reserved`.' },
  PORT_OUT_OF_BLOCK: { status: 409, wire: 6, doc: "The external port is not in the server's allocated block." },
  MAPPING_LIMIT_REACHED: { status: 422, wire: 7, doc: 'The server already has `mappings.max_per_server` mappings.' },
  NAME_TAKEN: { status: 409, wire: 8, doc: 'Mapping names are unique per relay; this one is in use (or the HTTPS host it gives, `{owner}-{name}`, `{owner}-{server_id}-{port}` or `{owner}-{group}`, is already another mapping\'s).' },
  UDP_NOT_ENABLED: { status: 409, wire: 9, doc: 'A udp mapping was asked for on a server whose UDP is off.' },
  POOL_EXHAUSTED: { status: 503, wire: 10, doc: 'No block of free public ports of the requested size is left in `ports.range`.' },
  CONFLICT: { status: 409, wire: 11, doc: 'The resource already exists (e.g. a server id in use).' },
  CONFIG_INVALID: { status: 400, wire: 12, doc: 'A config file key is unknown or has a bad value; the message names the key.' },
  PROTOCOL_ERROR: { status: 400, wire: 13, doc: 'A peer sent a malformed frame or message; only that peer is disconnected.' },
  VERSION_UNSUPPORTED: { status: 400, wire: 14, doc: 'Agent and relay share no protocol version.' },
  AGENT_OFFLINE: { status: 502, wire: 15, doc: "The server's agent is not connected." },
  NOTHING_LISTENING: { status: 502, wire: 16, doc: 'The agent got "connection refused" dialing the internal port.' },
  UPSTREAM_FAILED: { status: 502, wire: 17, doc: 'The agent could not reach the internal port for another reason (timeout, unreachable).' },
  TIMEOUT: { status: 504, wire: 18, doc: 'An operation or an idle connection timed out.' },
  LOOP_DETECTED: { status: 508, wire: 19, doc: "A forwarded connection came back into the relay's own public listener; it is refused." },
  SESSION_REPLACED: { status: 409, wire: 20, doc: 'A newer agent connection for the same server took over; the old one is closed.' },
  TOKEN_REVOKED: { status: 401, wire: 21, doc: "The agent token was rotated or the server deleted; the agent's session ends." },
  SHUTTING_DOWN: { status: 503, wire: 22, doc: 'The relay is draining for shutdown.' },
  RATE_LIMITED: { status: 429, wire: 23, doc: 'Too many requests or connections.' },
  INTERNAL: { status: 500, wire: 24, doc: 'An unexpected error; details are in the relay log.' },
  SERVER_LIMIT_REACHED: { status: 422, wire: 26, doc: 'The owner already has `servers.max_per_owner` servers (owner-scoped API keys; an admin key is not held to it).' },
  FORBIDDEN: { status: 403, wire: 25, doc: 'Access control refused the client: its IP address is blocked or not allowed, the user is not in `allowed_users`, or it has too many sessions.' },
} as const satisfies Record<string, { status: number; wire: number; doc: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Base class of every error Portico raises on purpose. */
export class PorticoError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PorticoError';
    this.code = code;
    this.details = details;
  }
  /** HTTP status the API answers with for this error. */
  get status(): number {
    return ERROR_CODES[this.code].status;
  }
}

export function isPorticoError(err: unknown): err is PorticoError {
  return err instanceof PorticoError;
}

/** Maps an ErrorCode to its wire enum number and back. */
export function errorCodeToWire(code: ErrorCode): number {
  return ERROR_CODES[code].wire;
}

export function errorCodeFromWire(n: number): ErrorCode {
  for (const [code, v] of Object.entries(ERROR_CODES)) if (v.wire === n) return code as ErrorCode;
  return 'INTERNAL';
}
