/** `portico relay`: load and validate the config once, start the relay, drain on SIGTERM. */
import type { Command } from 'commander';
import { relative } from 'node:path';
import { loadRelayConfig } from '../../shared/config/relay-config.js';
import { createLogger } from '../../shared/logging.js';
import { isPorticoError } from '../../shared/errors.js';
import { VERSION } from '../../shared/version.js';
import { Relay } from '../../relay/relay.js';
import { METRICS_KEY_FILE } from '../../relay/stats/metrics-route.js';
import { onShutdownSignal } from '../signals.js';

interface RelayFlags {
  config?: string;
  dev?: boolean;
  dataDir?: string;
  logLevel?: string;
}

export function registerRelayCommand(program: Command): void {
  program
    .command('relay')
    .description('run a relay: tunnel listener for agents, public ports, management API')
    .option('--config <file>', 'relay.yaml (see deploy/config/relay.full.yaml)')
    .option('--dev', 'fill unset keys with dev defaults (loopback, self-signed CA in the data dir)')
    .option('--data-dir <dir>', 'state directory (store, admin key, dev certificates)')
    .option('--log-level <level>', 'trace|debug|info|warn|error')
    .action(async (flags: RelayFlags) => {
      process.exitCode = await runRelay(flags);
    });
}

async function runRelay(flags: RelayFlags): Promise<number> {
  let config;
  try {
    config = loadRelayConfig({ configPath: flags.config, dev: Boolean(flags.dev), dataDir: flags.dataDir, logLevel: flags.logLevel });
  } catch (err) {
    process.stderr.write(`portico relay: ${(err as Error).message}\n`);
    return 2;
  }
  const logger = createLogger({ name: 'relay', level: config.logLevel });
  let relay: Relay;
  try {
    relay = await Relay.start(config, logger);
  } catch (err) {
    const msg = isPorticoError(err) ? `${err.code}: ${err.message}` : (err as Error).message;
    process.stderr.write(`portico relay: cannot start: ${msg}\n`);
    return isPorticoError(err) && err.code === 'CONFIG_INVALID' ? 2 : 1;
  }
  const rel = (p: string) => (relative(process.cwd(), p).startsWith('..') ? p : relative(process.cwd(), p) || '.');
  const { tunnel, api } = relay.addresses;
  const out = (l: string) => process.stdout.write(l + '\n');
  out(`portico relay ${VERSION}${config.dev ? ' (dev)' : ''}, data in ${rel(config.dataDir)}`);
  out(`tunnel  ${tunnel} (TLS${relay.tls.caPath ? `; agents pass --ca ${rel(relay.tls.caPath)}` : ''})`);
  out(`api     http://${api}/v1 (admin key: ${relay.adminKey.source === 'env' ? 'PORTICO_ADMIN_KEY' : rel(`${config.dataDir}/admin.key`)})`);
  out(`metrics http://${api}/metrics (Bearer: ${process.env.PORTICO_METRICS_KEY ? 'PORTICO_METRICS_KEY' : rel(`${config.dataDir}/${METRICS_KEY_FILE}`)} or the admin key)`);
  const web = relay.addresses;
  out(`https   ${web.https} (https://<token>.secure.${config.domain}${config.https.listen.port === 443 ? '' : `:${config.https.listen.port}`}); http ${web.http} redirects to it`);
  out(`ports   ${config.ports.bind} ${config.ports.range.start}-${config.ports.range.end}, ${config.ports.perServer} per server, public host ${config.publicHostname}`);
  out('relay ready');
  return new Promise<number>((resolve) => {
    onShutdownSignal(async (signal) => {
      logger.info({ signal }, 'draining');
      await relay.stop();
      logger.info('stopped');
      resolve(0);
    });
  });
}
