/**
 * `portico ports add|update|rm|list SERVER …`: a server's port mappings over
 * the management API. Same conventions as `portico server`: `--api`,
 * `--api-key` (env PORTICO_API / PORTICO_API_KEY), `--json` for the raw
 * `data`, failures printed as `error CODE: message` with exit code 1.
 * Changes apply live: the relay pushes them to the agent, no restart.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { ApiError, type MappingInput, type PortMappingView, type ProxyView } from '../api-client.js';
import { formatFields, formatPortRuns, formatTable } from '../format.js';
import { apiAction, apiCommandGroup, processIo, runInProcess, UsageError, type CliIo } from '../api-command.js';

interface MappingFlags {
  internal?: number;
  external?: number;
  name?: string;
  clearName?: boolean;
  http?: boolean;
  udp?: boolean;
  tcp?: boolean;
  description?: string;
}

function parsePort(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 65535) throw new InvalidArgumentError('expected a port number from 1 to 65535');
  return Number(value);
}

const dash = (s: string | null | undefined) => (s === null || s === undefined || s === '' ? '-' : s);

/** `connect01.example.com:20003` from a raw `tcp://…` URL. */
const hostPort = (m: PortMappingView) => m.urls.raw.replace(/^[a-z]+:\/\//, '');

function mappingText(m: PortMappingView, verb: string): string {
  const fields: Array<[string, string]> = [
    ['id', m.id],
    ['public', `${m.urls.raw}`],
    ['internal', String(m.internal_port)],
    ['protocol', m.protocol],
  ];
  for (const u of m.urls.https) fields.push(['https', u]);
  fields.push(['name', dash(m.name)], ['description', dash(m.description)], ['source', m.source], ['status', m.status]);
  return `${verb} mapping ${m.id}: ${hostPort(m)} -> internal port ${m.internal_port}\n` + formatFields(fields) + '\n';
}

function listText(v: ProxyView): string {
  const id = v.server_id ?? v.cluster_id ?? '';
  let out = `server ${id}  ports ${formatPortRuns(v.ports)}  proxy ${v.proxy_status}\n`;
  if (v.port_mappings.length === 0) {
    out += `\nno mappings: each public port P forwards to internal port P (e.g. ${v.public_hostname}:${v.ports[0] ?? 'P'} -> ${v.ports[0] ?? 'P'})\n`;
    return out;
  }
  out +=
    '\n' +
    formatTable([
      ['ID', 'PUBLIC', 'INTERNAL', 'PROTO', 'URL', 'NAME', 'SOURCE', 'STATUS', 'DESCRIPTION'],
      ...v.port_mappings.map((m) => [m.id, hostPort(m), String(m.internal_port), m.protocol, m.url, dash(m.name), m.source, m.status, dash(m.description)]),
    ]) +
    '\n';
  if (v.identity_ports.length > 0) out += `\nother ports forward to the same internal port: ${formatPortRuns(v.identity_ports)}\n`;
  return out;
}

/** The API body of `add`/`update` from the flags (only those given). */
function mappingBody(o: MappingFlags): MappingInput {
  if (o.udp && o.tcp) throw new ApiError('VALIDATION_FAILED', '--udp and --tcp cannot be combined', 0, { field: 'protocol' });
  if (o.name !== undefined && o.clearName) throw new ApiError('VALIDATION_FAILED', '--name and --clear-name cannot be combined', 0, { field: 'name' });
  const body: MappingInput = {};
  if (o.internal !== undefined) body.internal_port = o.internal;
  if (o.external !== undefined) body.external_port = o.external;
  if (o.udp) body.protocol = 'udp';
  if (o.tcp) body.protocol = 'tcp';
  if (o.name !== undefined) body.name = o.name;
  if (o.clearName) body.name = null;
  if (o.http !== undefined) body.http = o.http;
  if (o.description !== undefined) body.description = o.description;
  return body;
}

/** Adds `ports` and its subcommands to `program`. Exit codes go through `io.setExitCode` (1 on any error). */
export function registerPortsCommands(program: Command, io: CliIo = processIo): Command {
  const ports = apiCommandGroup(program, 'ports', "add, change, remove and list a server's port mappings (applied live, no agent restart)");
  const action = apiAction(io);

  ports
    .command('add')
    .argument('<server>', 'server id')
    .argument('[internal_port]', 'port inside the container (or --internal)', parsePort)
    .description("map an internal port to a public port of the server's block (auto-assigned unless --external)")
    .option('--internal <port>', 'port inside the container', parsePort)
    .option('--external <port>', "public port from the server's block (default: first free one)", parsePort)
    .option('--name <name>', 'unique name; http mappings also get https://{owner}-{name}.{domain}')
    .option('--http', 'also publish an HTTPS endpoint')
    .option('--udp', 'a UDP mapping (the server needs UDP enabled)')
    .option('--description <text>', 'what runs there')
    .action(
      action(async (client, flags, server: string, positional: number | undefined, opts: MappingFlags) => {
        const internal = opts.internal ?? positional;
        if (internal === undefined) throw new UsageError('the internal port is required: ports add SERVER PORT, or --internal PORT');
        if (opts.internal !== undefined && positional !== undefined && opts.internal !== positional) {
          throw new UsageError(`two internal ports given (${positional} and --internal ${opts.internal})`);
        }
        const body = mappingBody(opts);
        const { data } = await client.createMapping(server, { ...body, internal_port: internal });
        return flags.json ? data : mappingText(data, 'added');
      }),
    );

  ports
    .command('update')
    .argument('<server>', 'server id')
    .argument('<port_id>', 'mapping id (port_…)')
    .description('change a mapping (only the options given); agent-declared mappings: --description only')
    .option('--internal <port>', 'port inside the container', parsePort)
    .option('--external <port>', "public port from the server's block", parsePort)
    .option('--name <name>', 'unique name')
    .option('--clear-name', 'remove the name')
    .option('--http', 'publish an HTTPS endpoint')
    .option('--no-http', 'stop publishing an HTTPS endpoint')
    .option('--udp', 'make it a UDP mapping')
    .option('--tcp', 'make it a TCP mapping')
    .option('--description <text>', 'what runs there')
    .action(
      action(async (client, flags, server: string, portId: string, opts: MappingFlags) => {
        const body = mappingBody(opts);
        if (Object.keys(body).length === 0) {
          throw new ApiError('VALIDATION_FAILED', 'nothing to change: give at least one of --internal, --external, --name, --clear-name, --http, --no-http, --udp, --tcp, --description', 0);
        }
        const { data } = await client.updateMapping(server, portId, body);
        return flags.json ? data : mappingText(data, 'updated');
      }),
    );

  ports
    .command('rm')
    .alias('delete')
    .argument('<server>', 'server id')
    .argument('<port_id>', 'mapping id (port_…)')
    .description('remove a mapping (its public port falls back to forwarding to the same internal port)')
    .action(
      action(async (client, flags, server: string, portId: string) => {
        const { data } = await client.deleteMapping(server, portId);
        return flags.json ? data : `removed mapping ${data.id} from server ${server}\n`;
      }),
    );

  ports
    .command('list')
    .alias('ls')
    .argument('<server>', 'server id')
    .description("list a server's mappings with their public endpoints and URLs")
    .action(
      action(async (client, flags, server: string) => {
        const { data } = await client.getProxy(server);
        return flags.json ? data : listText(data);
      }),
    );

  return ports;
}

/** Runs `portico ports …` in-process (argv without node/script, e.g. ['ports', 'list', 'gpu-1']); resolves to the exit code. */
export function runPortsCli(argv: string[], io: Partial<CliIo> = {}): Promise<number> {
  return runInProcess(registerPortsCommands, argv, io);
}
