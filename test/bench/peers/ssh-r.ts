// ssh -R: OpenSSH reverse forwarding, the tunnel users already know. A
// throwaway sshd on 127.0.0.1 with throwaway keys in a temp dir (never the
// machine's own keys or config); one `ssh -N -R` client per forward.
import { mkdirSync, writeFileSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  assertLoopback,
  freePort,
  makeTempDir,
  removeTempDir,
  spawnTracked,
  stopChild,
  waitForPort,
  which,
  type Spawned,
} from './proc.js';
import type { Forward, PathAdapter, PathInstance } from './types.js';

function sshAdapter(name: string, label: string, cipher: string | null): PathAdapter {
  return {
    name,
    label,
    available: async () => {
      const missing = ['sshd', 'ssh', 'ssh-keygen'].filter((c) => !which(c));
      if (missing.length) return `${missing.join(', ')} not installed (apt-get install openssh-server openssh-client)`;
      if (cipher) {
        const q = spawnSync(which('ssh') as string, ['-Q', 'cipher'], { encoding: 'utf8' });
        if (!q.stdout.split('\n').includes(cipher)) return `ssh lacks cipher ${cipher}`;
      }
      return null;
    },
    open: async () => openSsh(cipher),
  };
}

async function openSsh(cipher: string | null): Promise<PathInstance> {
  const sshd = which('sshd') as string;
  const ssh = which('ssh') as string;
  const keygen = which('ssh-keygen') as string;
  const dir = makeTempDir('sshd');
  const user = os.userInfo().username;
  const isRoot = process.getuid?.() === 0;
  for (const k of ['hostkey', 'clientkey']) {
    const r = spawnSync(keygen, ['-q', '-t', 'ed25519', '-N', '', '-C', 'portico-bench', '-f', path.join(dir, k)], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
  }
  copyFileSync(path.join(dir, 'clientkey.pub'), path.join(dir, 'authorized_keys'));
  // sshd's privilege-separation directory; created by the package's service
  // unit normally, which we do not start.
  if (isRoot) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const port = await freePort('127.0.0.1');
  const cfg = [
    'ListenAddress 127.0.0.1',
    `Port ${port}`,
    `HostKey ${path.join(dir, 'hostkey')}`,
    `PidFile ${path.join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes no',
    'AllowTcpForwarding yes',
    'GatewayPorts no',
    'X11Forwarding no',
    'PrintMotd no',
    'MaxStartups 100:30:200',
    `AllowUsers ${user}`,
    '',
  ].join('\n');
  writeFileSync(path.join(dir, 'sshd_config'), cfg);
  const daemon = spawnTracked(sshd, ['-D', '-e', '-f', path.join(dir, 'sshd_config')]);
  try {
    await waitForPort('127.0.0.1', port, 5000, `sshd: ${daemon.output()}`);
  } catch (e) {
    await stopChild(daemon);
    removeTempDir(dir);
    throw e;
  }
  const clients: Spawned[] = [];
  const info: Record<string, unknown> = {
    sshd: `${sshd} on 127.0.0.1:${port}`,
    cipher: cipher ?? 'default (chacha20-poly1305@openssh.com)',
    version: spawnSync(ssh, ['-V'], { encoding: 'utf8' }).stderr.trim(),
  };
  return {
    targetPorts: null,
    info,
    start: async ({ targetHost, targetPort }): Promise<Forward> => {
      assertLoopback(targetHost);
      const pub = await freePort('127.0.0.1');
      const args = [
        '-N',
        '-F', '/dev/null',
        '-i', path.join(dir, 'clientkey'),
        '-o', 'IdentitiesOnly=yes',
        '-o', 'UserKnownHostsFile=/dev/null',
        '-o', 'StrictHostKeyChecking=no',
        '-o', 'BatchMode=yes',
        '-o', 'ExitOnForwardFailure=yes',
        '-o', 'LogLevel=ERROR',
        '-o', 'Compression=no',
        '-p', String(port),
        ...(cipher ? ['-c', cipher] : []),
        '-R', `127.0.0.1:${pub}:${targetHost}:${targetPort}`,
        `${user}@127.0.0.1`,
      ];
      const c = spawnTracked(ssh, args);
      clients.push(c);
      await waitForPort('127.0.0.1', pub, 10_000, `ssh -R: ${c.output()} / sshd: ${daemon.output().slice(-500)}`);
      return { host: '127.0.0.1', port: pub, stop: () => stopChild(c) };
    },
    stop: async () => {
      await Promise.all(clients.map((c) => stopChild(c)));
      await stopChild(daemon);
      removeTempDir(dir);
    },
  };
}

export const sshDefault = sshAdapter('ssh', 'ssh -R', null);
export const sshAes = sshAdapter('ssh-aes', 'ssh -R aes128-gcm', 'aes128-gcm@openssh.com');
