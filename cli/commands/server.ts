/** `portico server create|list|show|rm|udp|token`: the server calls of the management API. */
import { type Command, InvalidArgumentError } from 'commander';
import { ApiError, type ServerDetail, type ServerView } from '../api-client.js';
import { apiAction, apiCommandGroup, processIo, runInProcess, type CliIo } from '../api-command.js';

export { processIo, type CliIo } from '../api-command.js';
import { formatFields, formatPortRuns, formatTable } from '../format.js';

function parseIntArg(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected a whole number');
  return Number(value);
}

const yesNo = (b: boolean | undefined) => (b ? 'yes' : 'no');
const onOff = (b: boolean | undefined) => (b ? 'on' : 'off');
const dash = (s: string | null | undefined) => (s === null || s === undefined || s === '' ? '-' : s);

function portsCell(ports: number[]): string {
  return `${formatPortRuns(ports)} (${ports.length})`;
}

function serverRows(servers: ServerView[]): string[][] {
  return [
    ['ID', 'OWNER', 'PORTS', 'UDP', 'ONLINE', 'AGENT', 'CREATED'],
    ...servers.map((s) => [s.id, s.owner, portsCell(s.ports), onOff(s.udp), yesNo(s.online), dash(s.agent_version), s.created_at]),
  ];
}

function showText(s: ServerDetail): string {
  const fields: Array<[string, string]> = [
    ['id', s.id],
    ['owner', s.owner],
    ['ports', portsCell(s.ports)],
    ['udp', onOff(s.udp)],
    ['online', yesNo(s.online)],
    ['agent version', dash(s.agent_version)],
    ['connected since', dash(s.connected_since)],
    ['remote address', dash(s.remote_address)],
    ['created', s.created_at],
  ];
  let out = formatFields(fields) + '\n';
  const host = s.public_hostname ?? 'RELAY';
  if (s.mappings.length === 0) {
    out += `\nno explicit mappings: each public port P forwards to internal port P (e.g. ${host}:${s.ports[0] ?? 'P'} -> ${s.ports[0] ?? 'P'})\n`;
  } else {
    out +=
      '\n' +
      formatTable([
        ['MAPPING', 'PUBLIC', 'INTERNAL', 'PROTO', 'HTTP', 'NAME', 'SOURCE', 'DESCRIPTION'],
        ...s.mappings.map((m) => [m.id, `${host}:${m.external_port}`, String(m.internal_port), m.protocol, yesNo(m.http), dash(m.name), m.source, dash(m.description)]),
      ]) +
      '\n';
  }
  return out;
}

/** Adds `server` and its subcommands to `program`. Exit codes go through `io.setExitCode` (1 on any error). */
export function registerServerCommands(program: Command, io: CliIo = processIo): Command {
  const server = apiCommandGroup(program, 'server', 'register, list, show and remove servers on a relay (management API)');
  const action = apiAction(io);

  server
    .command('create')
    .description('register a server: allocates a public port block and prints its agent token (shown once)')
    .option('--id <id>', 'server id (default: random srv-xxxxxxxx)')
    .option('--owner <owner>', 'owner name used in HTTPS hostnames (default: default)')
    .option('--ports <n>', 'size of the public port block, 10..40 (default: relay ports.per_server)', parseIntArg)
    .option('--udp', 'enable UDP forwarding')
    .action(
      action(async (client, flags, opts: { id?: string; owner?: string; ports?: number; udp?: boolean }) => {
        const { data } = await client.createServer({
          ...(opts.id !== undefined && { id: opts.id }),
          ...(opts.owner !== undefined && { owner: opts.owner }),
          ...(opts.ports !== undefined && { ports: opts.ports }),
          ...(opts.udp && { udp: true }),
        });
        if (flags.json) return data;
        return (
          formatFields([
            ['id', data.id],
            ['owner', data.owner],
            ['ports', portsCell(data.ports)],
            ['udp', onOff(data.udp)],
            ['agent token', data.agent_token],
          ]) + '\n\nthe agent token is shown only once; start the agent with:\n' + `  portico agent --relay <relay-host>:<tunnel-port> --token ${data.agent_token}\n`
        );
      }),
    );

  server
    .command('list')
    .alias('ls')
    .description('list servers')
    .action(
      action(async (client, flags) => {
        const { data } = await client.listServers();
        if (flags.json) return data;
        return data.length === 0 ? 'no servers\n' : formatTable(serverRows(data)) + '\n';
      }),
    );

  server
    .command('show')
    .argument('<id>', 'server id')
    .description('show a server: ports, agent connection, mappings')
    .action(
      action(async (client, flags, id: string) => {
        const { data } = await client.getServer(id);
        return flags.json ? data : showText(data);
      }),
    );

  server
    .command('rm')
    .alias('delete')
    .argument('<id>', 'server id')
    .description('remove a server: disconnects its agent and frees its ports')
    .action(
      action(async (client, flags, id: string) => {
        const { data } = await client.deleteServer(id);
        return flags.json ? data : `removed server ${data.id}\n`;
      }),
    );

  server
    .command('udp')
    .argument('<id>', 'server id')
    .argument('<state>', 'on or off')
    .description('turn UDP forwarding on or off')
    .action(
      action(async (client, flags, id: string, state: string) => {
        if (state !== 'on' && state !== 'off') throw new ApiError('VALIDATION_FAILED', `state must be on or off, not ${JSON.stringify(state)}`, 0);
        const { data } = await client.setUdp(id, state === 'on');
        return flags.json ? data : `udp ${onOff(data.udp)} for server ${data.id}\n`;
      }),
    );

  server
    .command('token')
    .argument('<id>', 'server id')
    .description('rotate the agent token (the old one stops working; its agent is disconnected)')
    .action(
      action(async (client, flags, id: string) => {
        const { data } = await client.rotateToken(id);
        return flags.json ? data : `new agent token for ${data.id} (shown only once):\n  ${data.agent_token}\n`;
      }),
    );

  return server;
}

/** Runs `portico server …` in-process (argv without node/script, e.g. ['server', 'list']); resolves to the exit code. */
export function runServerCli(argv: string[], io: Partial<CliIo> = {}): Promise<number> {
  return runInProcess(registerServerCommands, argv, io);
}
