/** pino JSON logs (pretty on a TTY), with secrets redacted by path. */
import pino from 'pino';
import pretty from 'pino-pretty';

export type Logger = pino.Logger;

/** Every field name that may carry a secret, at any of the first two levels. */
const SECRET_KEYS = ['token', 'agent_token', 'agentToken', 'authorization', 'Authorization', 'cookie', 'password', 'apiKey', 'api_key', 'key', 'secret', 'adminKey'];
export const REDACT_PATHS = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'headers.authorization',
  'headers.cookie',
];

export interface LoggerOptions {
  name: string;
  level?: string;
  /** Force pretty (true) or JSON (false); default: pretty when stderr is a TTY. */
  pretty?: boolean;
}

export function createLogger(opts: LoggerOptions): Logger {
  const options: pino.LoggerOptions = {
    name: opts.name,
    level: opts.level ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  const wantPretty = opts.pretty ?? Boolean(process.stderr.isTTY);
  if (wantPretty) {
    return pino(options, pretty({ colorize: true, destination: 2, sync: true, ignore: 'pid,hostname' }));
  }
  return pino(options, pino.destination({ fd: 2, sync: true }));
}
