// Target services for the Node load generators, run as their own process so
// they do not share an event loop with the load generator:
//   node dist/test/bench/load/servers.js --host 127.0.0.2 --echo P [--source P] [--sink P]
// echo:   writes back whatever it reads (latency and connection-rate tests)
// source: streams bytes to the client until it goes away (download throughput)
// sink:   counts bytes, and on the client's half-close answers "<count>\n"
// Prints "ready" on stdout once every listener is up.
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const CHUNK = Buffer.alloc(256 * 1024, 0x5a);

export function echoServer(): net.Server {
  return net.createServer({ noDelay: true, allowHalfOpen: false }, (s) => {
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
}

export function sourceServer(): net.Server {
  return net.createServer({ noDelay: true }, (s) => {
    s.on('error', () => s.destroy());
    s.resume(); // ignore anything the client sends
    let open = true;
    s.on('close', () => (open = false));
    const pump = (): void => {
      while (open && s.write(CHUNK));
    };
    s.on('drain', pump);
    pump();
  });
}

export function sinkServer(): net.Server {
  return net.createServer({ allowHalfOpen: true }, (s) => {
    let n = 0;
    s.on('error', () => s.destroy());
    s.on('data', (d: Buffer) => {
      n += d.length;
    });
    s.on('end', () => s.end(`${n}\n`));
  });
}

function listen(srv: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ host, port, backlog: 4096 }, () => resolve());
  });
}

async function main(): Promise<void> {
  const args = new Map<string, string>();
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) args.set(argv[i] ?? '', argv[i + 1] ?? '');
  const host = args.get('--host') ?? '127.0.0.2';
  if (!host.startsWith('127.')) throw new Error('loopback only');
  const jobs: Promise<void>[] = [];
  const e = args.get('--echo');
  const so = args.get('--source');
  const si = args.get('--sink');
  if (e) jobs.push(listen(echoServer(), host, Number(e)));
  if (so) jobs.push(listen(sourceServer(), host, Number(so)));
  if (si) jobs.push(listen(sinkServer(), host, Number(si)));
  await Promise.all(jobs);
  process.stdout.write('ready\n');
  // Exit with the parent (stdin closes) and at the latest after a hard cap.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
  setTimeout(() => process.exit(0), Number(args.get('--max-seconds') ?? 3600) * 1000).unref();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: unknown) => {
    process.stderr.write(`servers: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
