/**
 * `portico demo` (= `npm start`): a dev relay, a server, an agent and a small
 * demo app in one process tree, then the URLs and curl lines that reach the
 * app through the tunnel. Ctrl-C stops everything.
 */
import type { Command } from 'commander';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDemoApp } from '../demo/app.js';
import { onShutdownSignal } from '../signals.js';

const BIN = fileURLToPath(new URL('../../../bin/portico.js', import.meta.url));
const API = 'http://127.0.0.1:7400';
const SERVER_ID = 'demo';

interface DemoFlags {
  dataDir: string;
  appPort: string;
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('start a dev relay, an agent and a demo app, and print URLs that work')
    .option('--data-dir <dir>', 'relay data directory', '.portico')
    .option('--app-port <port>', 'port of the demo app inside the "container"', '8080')
    .action(async (flags: DemoFlags) => {
      process.exitCode = await runDemo(flags);
    });
}

function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs: number, echo: (l: string) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}`)), timeoutMs);
    const onData = (d: Buffer) => {
      buf += d.toString('utf8');
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        echo(line);
        if (pattern.test(line)) {
          clearTimeout(timer);
          child.stdout?.off('data', onData);
          child.stdout?.on('data', (x: Buffer) => process.stdout.write(x));
          resolve(line);
          return;
        }
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with code ${code} before it was ready`));
    });
  });
}

async function api<T>(key: string, method: string, path: string, body?: unknown): Promise<{ status: number; data: T; error?: { code: string; message: string } }> {
  const res = await fetch(`${API}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = (await res.json()) as { data: T; error?: { code: string; message: string } };
  return { status: res.status, data: json.data, error: json.error };
}

async function runDemo(flags: DemoFlags): Promise<number> {
  const dataDir = flags.dataDir;
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const out = (l: string) => process.stdout.write(l + '\n');
  const children: ChildProcess[] = [];
  const app = await startDemoApp('127.0.0.1', Number(flags.appPort));
  out(`demo app listening on 127.0.0.1:${app.port} (inside the "container")`);

  const stopAll = async () => {
    for (const c of children.reverse()) if (c.exitCode === null) c.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : null)));
    await app.close();
  };
  try {
    const relay = spawn(process.execPath, [BIN, 'relay', '--dev', '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(relay);
    await waitForLine(relay, /^relay ready/, 30_000, out);

    const key = readFileSync(join(dataDir, 'admin.key'), 'utf8').trim();
    const tokenFile = join(dataDir, 'demo-agent.token');
    let token = existsSync(tokenFile) ? readFileSync(tokenFile, 'utf8').trim() : '';
    const show = await api<{ id: string }>(key, 'GET', `/v1/servers/${SERVER_ID}`);
    if (show.status === 404) {
      const created = await api<{ agent_token: string }>(key, 'POST', '/v1/servers', { id: SERVER_ID, ports: 20 });
      if (created.status !== 201) throw new Error(`cannot create the demo server: ${created.error?.code} ${created.error?.message}`);
      token = created.data.agent_token;
    } else if (!token) {
      const rotated = await api<{ agent_token: string }>(key, 'POST', `/v1/servers/${SERVER_ID}/token`);
      if (rotated.status !== 200) throw new Error(`cannot get a token for the demo server: ${rotated.error?.code} ${rotated.error?.message}`);
      token = rotated.data.agent_token;
    }
    writeFileSync(tokenFile, token + '\n', { mode: 0o600 });

    const agentYaml = join(dataDir, 'demo-agent.yaml');
    writeFileSync(
      agentYaml,
      [
        '# written by `portico demo`',
        'relay: 127.0.0.1:7000',
        `ca: ${resolve(dataDir, 'ca.pem')}`,
        'local_host: 127.0.0.1',
        'mappings:',
        `  - internal_port: ${app.port}`,
        '    name: demo',
        '    http: true',
        '    description: demo app',
        '',
      ].join('\n'),
    );
    const agent = spawn(process.execPath, [BIN, 'agent', '--config', agentYaml], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, PORTICO_TOKEN: token } });
    children.push(agent);
    // Every agent line, including the endpoint table that follows "connected".
    const lines: string[] = [];
    let pending = '';
    agent.stdout?.on('data', (d: Buffer) => {
      pending += d.toString('utf8');
      let i: number;
      while ((i = pending.indexOf('\n')) >= 0) {
        lines.push(pending.slice(0, i));
        pending = pending.slice(i + 1);
      }
    });
    await waitForLine(agent, /^connected to /, 30_000, () => undefined);
    // The rest of the endpoint table follows the "connected" line; wait for the demo app's https lines.
    for (let i = 0; i < 50 && lines.filter((l) => l.startsWith('https') && l.endsWith(`:${app.port}`)).length < 2; i++) await new Promise((r) => setTimeout(r, 100));
    const rawLine = lines.find((l) => l.startsWith('tcp') && l.includes(`127.0.0.1:${app.port}`));
    const raw = rawLine?.split(/\s+/)[1] ?? '(see the agent output above)';
    const rel = relative(process.cwd(), join(dataDir, 'ca.pem'));
    const httpsUrls = lines.filter((l) => l.startsWith('https') && l.endsWith(`:${app.port}`)).map((l) => l.split(/\s+/)[1]!);
    const secure = httpsUrls.find((u) => u.includes('.secure.'));
    out('');
    out('Portico demo is running. The agent publishes the demo app at:');
    out(`  raw TCP   http://${raw}/`);
    for (const u of httpsUrls) out(`  HTTPS     ${u}/`);
    out('');
    out('Try:');
    out(`  curl http://${raw}/api/hello`);
    out(`  curl -N http://${raw}/events`);
    if (secure) {
      out(`  curl --cacert ${rel} ${secure}/api/hello`);
      out(`  curl -N --cacert ${rel} ${secure}/events`);
      out(`  (browsers: trust ${rel} or accept the warning; WebSocket echo at ${secure.replace('https:', 'wss:')}/ws)`);
    }
    out('');
    out(`Management API: ${API}/v1 (admin key in ${relative(process.cwd(), join(dataDir, 'admin.key'))}); agents trust ${rel}`);
    out(`  curl -H "Authorization: Bearer $(cat ${relative(process.cwd(), join(dataDir, 'admin.key'))})" ${API}/v1/servers`);
    out('Press Ctrl-C to stop.');
  } catch (err) {
    process.stderr.write(`portico demo: ${(err as Error).message}\n`);
    await stopAll();
    return 1;
  }
  return new Promise<number>((resolve) => {
    onShutdownSignal(async () => {
      await stopAll();
      resolve(0);
    });
  });
}
