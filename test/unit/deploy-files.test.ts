// Static checks of deploy/: the systemd units carry their hardening, the
// Containerfiles build as a non-root image with the right entrypoint, and the
// example configs they point operators at exist. No container runtime or
// systemd instance is needed (neither is available on the dev machines).
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { parse as parseYaml } from 'yaml';

const root = process.cwd();
const rel = (p: string) => join(root, p);
const read = (p: string) => readFileSync(rel(p), 'utf8');

const RELAY_UNIT = 'deploy/systemd/portico-relay.service';
const AGENT_UNIT = 'deploy/systemd/portico-agent.service';
const RELAY_IMAGE = 'deploy/containers/relay.Containerfile';
const AGENT_IMAGE = 'deploy/containers/agent.Containerfile';
const CONTAINERS_README = 'deploy/containers/README.md';
/** Default drain grace of the relay on SIGTERM (RelayConfig.shutdownGrace). */
const DEFAULT_GRACE_MS = 30_000;

// ---------------------------------------------------------------- unit files

type Unit = Map<string, Map<string, string[]>>;

/** Parses a systemd unit: [Section] headers, Key=Value lines (repeatable), # and ; comments. */
function parseUnit(text: string): { unit: Unit; errors: string[] } {
  const unit: Unit = new Map();
  const errors: string[] = [];
  let section: Map<string, string[]> | undefined;
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const head = /^\[([A-Za-z]+)\]$/.exec(line);
    if (head) {
      section = unit.get(head[1]!) ?? new Map();
      unit.set(head[1]!, section);
      return;
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)\s*=\s*(.*)$/.exec(line);
    if (!kv) return void errors.push(`line ${i + 1}: not Key=Value: ${line}`);
    if (!section) return void errors.push(`line ${i + 1}: ${kv[1]} before any [Section]`);
    const list = section.get(kv[1]!) ?? [];
    list.push(kv[2]!.trim());
    section.set(kv[1]!, list);
  });
  return { unit, errors };
}

/** systemd time span ("45s", "1min 30s", "90" = seconds) in ms. */
function parseTimespan(s: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, sec: 1000, m: 60_000, min: 60_000, h: 3_600_000 };
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  let total = 0;
  const re = /(\d+)\s*(ms|sec|s|min|m|h)\b/g;
  let m: RegExpExecArray | null;
  let seen = '';
  while ((m = re.exec(s))) {
    total += Number(m[1]) * units[m[2]!]!;
    seen += m[0];
  }
  if (seen.replace(/\s/g, '') !== s.replace(/\s/g, '')) return NaN;
  return total;
}

/** Duration as in Portico configs ("500ms", "60s", "10m") in ms. */
function parseConfigDuration(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v !== 'string') return undefined;
  const m = /^(\d+)(ms|s|m|h)$/.exec(v.trim());
  if (!m) return undefined;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
}

/** Hardening every Portico unit must carry: key -> exact value. */
const COMMON_HARDENING: Record<string, string> = {
  NoNewPrivileges: 'yes',
  ProtectSystem: 'strict',
  ProtectHome: 'yes',
  PrivateTmp: 'yes',
  PrivateDevices: 'yes',
  ProtectKernelTunables: 'yes',
  ProtectKernelModules: 'yes',
  ProtectKernelLogs: 'yes',
  ProtectControlGroups: 'yes',
  RestrictNamespaces: 'yes',
  LockPersonality: 'yes',
  SystemCallFilter: '@system-service',
  LimitNOFILE: '1048576',
  KillSignal: 'SIGTERM',
};

function checkCommonUnit(t: Test, file: string, text: string, unit: Unit, families: string[]): Map<string, string[]> | undefined {
  const svc = unit.get('Service');
  if (!svc) {
    t.fail(`${file}: no [Service] section`);
    return undefined;
  }
  t.ok(unit.has('Unit'), `${file}: [Unit] section`);
  t.same(unit.get('Install')?.get('WantedBy'), ['multi-user.target'], `${file}: WantedBy=multi-user.target`);
  const last = (k: string) => svc.get(k)?.at(-1);
  for (const [k, v] of Object.entries(COMMON_HARDENING)) t.equal(last(k), v, `${file}: ${k}=${v}`);
  t.same((last('RestrictAddressFamilies') ?? '').split(/\s+/).sort(), [...families].sort(), `${file}: RestrictAddressFamilies=${families.join(' ')}`);
  t.ok(svc.has('DynamicUser') || (last('User') !== undefined && last('User') !== 'root' && last('User') !== '0'), `${file}: runs as DynamicUser or a dedicated User`);
  // V8's JIT needs writable+executable pages: MemoryDenyWriteExecute would crash node.
  t.notOk(/^(yes|true|1|on)$/i.test(last('MemoryDenyWriteExecute') ?? ''), `${file}: MemoryDenyWriteExecute is not enabled (V8 JIT)`);
  t.match(text, /#.*MemoryDenyWriteExecute[\s\S]{0,200}JIT/, `${file}: a comment says why MemoryDenyWriteExecute is off`);
  const stop = parseTimespan(last('TimeoutStopSec') ?? '');
  t.ok(stop > DEFAULT_GRACE_MS, `${file}: TimeoutStopSec (${last('TimeoutStopSec')}) exceeds the ${DEFAULT_GRACE_MS / 1000} s drain grace`);
  t.ok(svc.get('ExecStart')?.length === 1, `${file}: exactly one ExecStart`);
  return svc;
}

function which(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, bin);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

t.test('systemd units', async (t) => {
  t.test('portico-relay.service', async (t) => {
    const text = read(RELAY_UNIT);
    const { unit, errors } = parseUnit(text);
    t.same(errors, [], 'parses as sections of Key=Value lines');
    const svc = checkCommonUnit(t, RELAY_UNIT, text, unit, ['AF_INET', 'AF_INET6', 'AF_UNIX', 'AF_NETLINK']); // netlink: the loop guard lists interface addresses
    if (!svc) return;
    const last = (k: string) => svc.get(k)?.at(-1);
    t.equal(last('ExecStart'), '/usr/bin/env portico relay --config /etc/portico/relay.yaml', 'ExecStart runs the relay with /etc/portico/relay.yaml');
    t.equal(last('StateDirectory'), 'portico', 'StateDirectory=portico (/var/lib/portico, the data_dir)');
    t.equal(last('CapabilityBoundingSet'), 'CAP_NET_BIND_SERVICE', 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE only');
    t.equal(last('AmbientCapabilities'), 'CAP_NET_BIND_SERVICE', 'AmbientCapabilities=CAP_NET_BIND_SERVICE (80/443 without root)');
    t.equal(last('Restart'), 'on-failure', 'Restart=on-failure');
    t.notOk(/^(yes|true|1|on)$/i.test(last('PrivateUsers') ?? ''), 'PrivateUsers off (it would void CAP_NET_BIND_SERVICE on the host netns)');
  });

  t.test('portico-agent.service', async (t) => {
    const text = read(AGENT_UNIT);
    const { unit, errors } = parseUnit(text);
    t.same(errors, [], 'parses as sections of Key=Value lines');
    const svc = checkCommonUnit(t, AGENT_UNIT, text, unit, ['AF_INET', 'AF_INET6', 'AF_UNIX']);
    if (!svc) return;
    const last = (k: string) => svc.get(k)?.at(-1);
    t.match(last('ExecStart') ?? '', /^\/usr\/bin\/env portico agent(\s|$)/, 'ExecStart runs `portico agent`');
    t.notMatch(last('ExecStart') ?? '', /--token/, 'no token on the command line (visible in ps)');
    t.ok((svc.get('EnvironmentFile') ?? []).some((v) => v.replace(/^-/, '') === '/etc/portico/agent.env'), 'EnvironmentFile=/etc/portico/agent.env carries PORTICO_TOKEN');
    t.match(text, /agent\.env[^\n]*0600|0600[^\n]*agent\.env/, 'a comment says agent.env is mode 0600');
    t.equal(last('Restart'), 'always', 'Restart=always');
    t.ok((last('RestartPreventExitStatus') ?? '').split(/\s+/).includes('2'), 'RestartPreventExitStatus=2 (bad token/config must not loop)');
    t.notOk(/CAP_/.test(last('AmbientCapabilities') ?? '') || /CAP_/.test(last('CapabilityBoundingSet') ?? 'CAP_ALL'), 'no capabilities at all');
  });

  const analyze = which('systemd-analyze');
  t.test('systemd-analyze verify', { skip: analyze ? false : 'systemd-analyze is not installed on this machine: verify skipped (static checks above still ran)' }, async (t) => {
    const bin = analyze!;
    for (const file of [RELAY_UNIT, AGENT_UNIT]) {
      const name = file.split('/').at(-1)!;
      const r = spawnSync(bin, ['verify', '--man=no', rel(file)], { encoding: 'utf8', timeout: 30_000 });
      const about = (r.stderr ?? '').split('\n').filter((l) => l.includes(name));
      if (r.status !== 0 && about.length === 0) {
        t.pass(`${name}: systemd-analyze verify`, { skip: `cannot run here (exit ${r.status}): ${(r.stderr || String(r.error)).trim().slice(0, 300)}` });
        continue;
      }
      t.same(about, [], `${name}: systemd-analyze verify reports nothing`);
      t.equal(r.status, 0, `${name}: systemd-analyze verify exits 0`);
    }
  });

  t.test('systemd-analyze security', { skip: analyze ? false : 'systemd-analyze is not installed on this machine: exposure check skipped' }, async (t) => {
    const bin = analyze!;
    for (const file of [RELAY_UNIT, AGENT_UNIT]) {
      const name = file.split('/').at(-1)!;
      const r = spawnSync(bin, ['security', '--offline=yes', '--no-pager', rel(file)], { encoding: 'utf8', timeout: 30_000 });
      const m = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(r.stdout ?? '');
      if (!m) {
        t.pass(`${name}: exposure level`, { skip: `systemd-analyze security --offline is not supported here (systemd < 250?): ${(r.stderr || '').trim().slice(0, 200)}` });
        continue;
      }
      t.ok(Number(m[1]) <= 2.5, `${name}: exposure level ${m[1]} <= 2.5 ("OK")`);
    }
  });
});

// ------------------------------------------------------------ Containerfiles

interface Instruction {
  op: string;
  args: string;
  stage: number;
}

/** Splits a Containerfile into instructions (continuations joined, comments dropped), tagged with their stage. */
function parseContainerfile(text: string): { instructions: Instruction[]; stages: { base: string; name?: string }[] } {
  const instructions: Instruction[] = [];
  const stages: { base: string; name?: string }[] = [];
  let current = '';
  const flush = () => {
    const s = current.trim();
    current = '';
    if (!s) return;
    const m = /^([A-Za-z]+)\s+([\s\S]*)$/.exec(s);
    if (!m) return;
    const op = m[1]!.toUpperCase();
    const args = m[2]!.trim();
    if (op === 'FROM') {
      const f = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      stages.push({ base: f?.[1] ?? args, ...(f?.[2] ? { name: f[2] } : {}) });
    }
    instructions.push({ op, args, stage: stages.length - 1 });
  };
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw)) continue;
    if (/\\\s*$/.test(raw)) {
      current += raw.replace(/\\\s*$/, ' ');
      continue;
    }
    current += raw;
    flush();
  }
  flush();
  return { instructions, stages };
}

function checkContainerfile(t: Test, file: string, expectCmd: string[]) {
  const { instructions, stages } = parseContainerfile(read(file));
  const finalStage = stages.length - 1;
  const inFinal = instructions.filter((i) => i.stage === finalStage);
  const runs = instructions.filter((i) => i.op === 'RUN').map((i) => i.args);
  t.ok(stages.length >= 2, `${file}: multi-stage (${stages.length} stages)`);
  t.ok(stages.every((s) => s.base === 'node:20-bookworm-slim' || stages.some((o) => o.name === s.base)), `${file}: every stage is node:20-bookworm-slim or built on one`);
  t.ok(runs.some((r) => /apt-get install[^&]*\bpython3\b/.test(r) && /\bmake\b/.test(r) && /\bg\+\+/.test(r)), `${file}: installs python3 make g++ (better-sqlite3 builds from source)`);
  t.ok(runs.some((r) => /\bnpm ci\b(?![^&]*--omit=dev)/.test(r)), `${file}: a build stage runs npm ci (with dev deps)`);
  t.ok(runs.some((r) => /\bnpm run build\b/.test(r)), `${file}: a build stage runs npm run build`);
  t.ok(runs.some((r) => /\bnpm ci\b[^&]*--omit=dev/.test(r)), `${file}: a stage runs npm ci --omit=dev`);
  t.equal(stages[finalStage]?.base, 'node:20-bookworm-slim', `${file}: runtime stage starts from node:20-bookworm-slim, not from the toolchain`);
  t.notOk(inFinal.some((i) => i.op === 'RUN' && /\b(g\+\+|npm (ci|install))\b/.test(i.args)), `${file}: runtime stage installs neither compiler nor packages`);
  t.ok(inFinal.some((i) => i.op === 'COPY' && /--from=\S+/.test(i.args) && /node_modules/.test(i.args)), `${file}: runtime copies node_modules from a stage`);
  t.ok(inFinal.some((i) => i.op === 'COPY' && /--from=\S+/.test(i.args) && /\bdist\b/.test(i.args)), `${file}: runtime copies dist from the build stage`);

  const users = inFinal.filter((i) => i.op === 'USER').map((i) => i.args.split(':')[0]!);
  const user = users.at(-1);
  t.ok(user !== undefined && user !== 'root' && user !== '0', `${file}: runtime stage ends with a non-root USER (${user ?? 'none'})`);
  const userIdx = inFinal.findLastIndex((i) => i.op === 'USER');
  t.notOk(inFinal.slice(userIdx + 1).some((i) => i.op === 'USER'), `${file}: nothing switches back to root`);

  const entry = inFinal.filter((i) => i.op === 'ENTRYPOINT').at(-1);
  let entryJson: unknown;
  try {
    entryJson = entry && JSON.parse(entry.args);
  } catch {
    entryJson = undefined;
  }
  t.same(entryJson, ['node', '/app/bin/portico.js'], `${file}: ENTRYPOINT ["node","/app/bin/portico.js"] (exec form, signals reach node)`);
  const cmd = inFinal.filter((i) => i.op === 'CMD').at(-1);
  let cmdJson: unknown;
  try {
    cmdJson = cmd && JSON.parse(cmd.args);
  } catch {
    cmdJson = undefined;
  }
  t.same(cmdJson, expectCmd, `${file}: CMD ${JSON.stringify(expectCmd)}`);

  // What the build copies from the context must exist in the repo.
  for (const i of instructions.filter((i) => i.op === 'COPY' && !/--from=/.test(i.args))) {
    const parts = i.args.split(/\s+/).filter((p) => !p.startsWith('--'));
    for (const src of parts.slice(0, -1)) t.ok(existsSync(rel(src)), `${file}: COPY source ${src} exists`);
  }
  return { instructions, inFinal };
}

t.test('Containerfiles', async (t) => {
  t.test('relay.Containerfile', async (t) => {
    const { inFinal } = checkContainerfile(t, RELAY_IMAGE, ['relay', '--config', '/etc/portico/relay.yaml']);
    const exposed = inFinal.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/)).map((p) => p.replace(/\/tcp$/, ''));
    for (const port of ['7000', '443', '80', '7400']) t.ok(exposed.includes(port), `EXPOSE ${port}`);
    t.ok(inFinal.some((i) => i.op === 'VOLUME' && /\/var\/lib\/portico\b/.test(i.args)), 'VOLUME /var/lib/portico');
    t.ok(inFinal.some((i) => i.op === 'HEALTHCHECK' && /\bCMD\b/.test(i.args)), 'HEALTHCHECK present');
  });

  t.test('agent.Containerfile', async (t) => {
    const text = read(AGENT_IMAGE);
    checkContainerfile(t, AGENT_IMAGE, ['agent']);
    t.match(text, /#.*(tini|--init)/, 'a comment covers tini / --init (the agent is PID-1 friendly itself)');
  });

  t.test('bin shim path matches the ENTRYPOINT', async (t) => {
    const pkg = JSON.parse(read('package.json')) as { bin?: Record<string, string> };
    t.equal(pkg.bin?.portico?.replace(/^\.\//, ''), 'bin/portico.js', 'package.json bin.portico is bin/portico.js (/app/bin/portico.js in the image)');
  });

  t.test('README', async (t) => {
    const text = read(CONTAINERS_README);
    for (const f of ['relay.Containerfile', 'agent.Containerfile']) t.match(text, new RegExp(`build -f deploy/containers/${f.replace('.', '\\.')}`), `build command for ${f}`);
    t.match(text, /docker[\s\S]{0,80}not available/i, 'says docker is not available on the dev machines');
    t.match(text, /stop-timeout/, 'tells operators to raise the stop timeout above the drain grace');
  });
});

// ---------------------------------------------------------- example configs

t.test('deploy/config files referenced from deploy/ exist', async (t) => {
  const referencing = [RELAY_UNIT, AGENT_UNIT, RELAY_IMAGE, AGENT_IMAGE, CONTAINERS_README];
  const refs = new Set(['deploy/config/relay.example.yaml', 'deploy/config/relay.full.yaml', 'deploy/config/agent.example.yaml', 'deploy/config/agent.full.yaml']);
  for (const f of referencing) for (const m of read(f).matchAll(/deploy\/config\/[\w.-]+\.ya?ml/g)) refs.add(m[0]);
  const missing: string[] = [];
  for (const ref of [...refs].sort()) {
    if (!existsSync(rel(ref))) {
      missing.push(ref);
      continue;
    }
    let doc: unknown;
    try {
      doc = parseYaml(read(ref));
      t.pass(`${ref} exists and parses as YAML`);
    } catch (err) {
      t.fail(`${ref} does not parse as YAML: ${(err as Error).message}`);
      continue;
    }
    // The relay's data_dir must be what the unit (StateDirectory) and the image (VOLUME) provide.
    if (/relay\.(example|full)\.yaml$/.test(ref) && doc && typeof doc === 'object') {
      const d = doc as Record<string, unknown>;
      if (typeof d.data_dir === 'string') t.equal(d.data_dir, '/var/lib/portico', `${ref}: data_dir is /var/lib/portico (StateDirectory, VOLUME)`);
      const grace = parseConfigDuration(d.shutdown_grace);
      if (grace !== undefined) t.ok(grace < 45_000, `${ref}: shutdown_grace ${String(d.shutdown_grace)} stays below TimeoutStopSec/--stop-timeout 45 s`);
    }
  }
  for (const ref of missing) t.pass(`${ref} exists`, { skip: `${ref} is not written yet (someone else owns deploy/config/)` });
});
