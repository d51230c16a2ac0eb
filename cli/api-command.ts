/**
 * What every management-API command group shares: the --api/--api-key/--json
 * options, one action wrapper that calls the API and prints the result or an
 * `error CODE: message` line (exit 1), and an in-process runner for tests.
 */
import { Command, CommanderError } from 'commander';
import { ApiClient, ApiError, resolveApiOptions } from './api-client.js';

/** Where a command writes and how it reports its exit code (swappable for in-process tests). */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  setExitCode(code: number): void;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export const processIo: CliIo = {
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(t),
  setExitCode: (c) => void (process.exitCode = c),
  get env() {
    return process.env;
  },
  get cwd() {
    return process.cwd();
  },
};

export interface ApiFlags {
  api?: string;
  apiKey?: string;
  json?: boolean;
}

/**
 * The API options on the program itself too, so they may come before the
 * command group (`portico --api URL server list`) as well as after it.
 */
export function addGlobalApiOptions(program: Command): Command {
  return program
    .option('--api <url>', 'management API base URL for server/ports (env PORTICO_API)')
    .option('--api-key <key>', 'API key for server/ports (env PORTICO_API_KEY)')
    .option('--json', 'server/ports: print the raw `data` JSON of the response');
}

/** A command line the API commands cannot run (printed as `error USAGE: …`, exit 1). */
export class UsageError extends Error {}

/** Adds a command group with the API options; usage errors print as `error USAGE: …`. */
export function apiCommandGroup(program: Command, name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .option('--api <url>', 'management API base URL (env PORTICO_API, default http://127.0.0.1:7400)')
    .option('--api-key <key>', 'API key (env PORTICO_API_KEY, else ./.portico/admin.key)')
    .option('--json', 'print the raw `data` JSON of the response')
    .configureOutput({ outputError: (str, write) => write(str.replace(/^error: /, 'error USAGE: ')) });
}

/** The one-line message for a failed call. */
export function formatApiError(err: unknown): string {
  if (err instanceof UsageError) return `error USAGE: ${err.message}`;
  if (!(err instanceof ApiError)) return `error INTERNAL: ${(err as Error).message}`;
  let msg = `error ${err.code}: ${err.message}`;
  const field = err.details.field;
  if (err.code === 'VALIDATION_FAILED' && typeof field === 'string' && !err.message.includes(field)) msg += ` (field ${field})`;
  if (err.code === 'PORT_ALREADY_MAPPED' && typeof err.details.suggestion === 'string') msg += `; ${err.details.suggestion}`;
  if (err.code === 'UNAUTHORIZED') msg += ' (pass --api-key or set PORTICO_API_KEY)';
  return msg;
}

/** Wraps a command body: builds the client from the merged flags, prints text or JSON, or the error line with exit 1. */
export function apiAction(io: CliIo) {
  return <A extends unknown[]>(fn: (client: ApiClient, flags: ApiFlags, ...args: A) => Promise<string | object>) =>
    async (...args: unknown[]): Promise<void> => {
      const cmd = args[args.length - 1] as Command;
      const flags = cmd.optsWithGlobals<ApiFlags>();
      const client = new ApiClient(resolveApiOptions({ api: flags.api, apiKey: flags.apiKey }, io.env, io.cwd));
      try {
        const out = await fn(client, flags, ...(args.slice(0, -1) as A));
        io.stdout(typeof out === 'string' ? out : JSON.stringify(out, null, 2) + '\n');
      } catch (err) {
        io.stderr(formatApiError(err) + '\n');
        io.setExitCode(1);
      }
    };
}

/** Runs one command group in-process (argv without node/script, e.g. ['ports', 'list', 'gpu-1']); resolves to the exit code. */
export async function runInProcess(register: (program: Command, io: CliIo) => Command, argv: string[], io: Partial<CliIo> = {}): Promise<number> {
  let code = 0;
  const full: CliIo = {
    stdout: io.stdout ?? processIo.stdout,
    stderr: io.stderr ?? processIo.stderr,
    setExitCode: (c) => {
      code = c;
      io.setExitCode?.(c);
    },
    env: io.env ?? process.env,
    cwd: io.cwd ?? process.cwd(),
  };
  const program = addGlobalApiOptions(new Command('portico').exitOverride().configureOutput({ writeOut: full.stdout, writeErr: full.stderr }));
  register(program, full);
  for (const cmd of program.commands) {
    cmd.exitOverride();
    cmd.configureOutput({ writeOut: full.stdout, writeErr: full.stderr });
    for (const sub of cmd.commands) sub.exitOverride().configureOutput({ writeOut: full.stdout, writeErr: full.stderr });
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    throw err;
  }
  return code;
}
