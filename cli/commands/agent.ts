/** `portico agent`: dial the relay and serve the container's ports; exit 2 on a fatal refusal. */
import type { Command } from 'commander';
import { loadAgentConfig, type AgentFlags } from '../../shared/config/agent-config.js';
import { createLogger } from '../../shared/logging.js';
import { Agent } from '../../agent/agent.js';
import { onShutdownSignal } from '../signals.js';

interface Flags extends AgentFlags {
  config?: string;
}

export function registerAgentCommand(program: Command): void {
  program
    .command('agent')
    .description('run an agent inside a container: dial the relay and publish local ports')
    .option('--relay <host:port>', "relay's tunnel address (default port 7000)")
    .option('--token <token>', 'agent token from `portico server create` (or env PORTICO_TOKEN)')
    .option('--ca <file>', 'CA bundle to verify the relay (dev: <relay data dir>/ca.pem)')
    .option('--insecure', 'do not verify the relay certificate (dev only)')
    .option('--local-host <host>', 'address to dial internal ports on', undefined)
    .option('--config <file>', 'agent.yaml (see deploy/config/agent.full.yaml)')
    .option('--max-retries <n>', 'give up after this many failed attempts in a row (default: retry forever)')
    .option('--log-level <level>', 'trace|debug|info|warn|error')
    .action(async (flags: Flags) => {
      process.exitCode = await runAgent(flags);
    });
}

async function runAgent(flags: Flags): Promise<number> {
  let config;
  try {
    config = loadAgentConfig({ configPath: flags.config, flags, env: process.env });
  } catch (err) {
    process.stderr.write(`portico agent: ${(err as Error).message}\n`);
    return 2;
  }
  const logger = createLogger({ name: 'agent', level: config.logLevel });
  const agent = new Agent(config, logger);
  onShutdownSignal(async () => agent.stop());
  const exit = await agent.run();
  if (exit.code !== 0) process.stderr.write(`portico agent: ${exit.reason}\n`);
  return exit.code;
}
