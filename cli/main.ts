/** The `portico` CLI: relay, agent, demo, server, ports. */
import { Command } from 'commander';
import { VERSION } from '../shared/version.js';
import { registerRelayCommand } from './commands/relay.js';
import { registerAgentCommand } from './commands/agent.js';
import { registerServerCommands } from './commands/server.js';
import { registerPortsCommands } from './commands/ports.js';
import { registerDemoCommand } from './commands/demo.js';
import { addGlobalApiOptions } from './api-command.js';

const program = new Command('portico')
  .description('Publish services inside GPU containers through an outbound TLS tunnel: raw TCP/UDP ports and HTTPS subdomains')
  .version(VERSION);
addGlobalApiOptions(program);
registerRelayCommand(program);
registerAgentCommand(program);
registerDemoCommand(program);
registerServerCommands(program);
registerPortsCommands(program);

await program.parseAsync(process.argv);
// Whatever a command leaves behind, leave once its work is done.
setTimeout(() => process.exit(process.exitCode ?? 0), 1_000).unref();
