// The bench's verdicts (test/bench/table.ts): the issue-7 targets judged from
// side-by-side values, the table's cells, and the latency line read against
// the hop floor (two socat forwarders in series), and the single-stream line
// read against the Node and socat TLS pipes. These are what the issue's
// acceptance reads, so a wrong sign or ratio here would mislead every run.
import t from 'tap';
import { HOP_FLOOR, NATIVE_TLS, NODE_TLS, SEALED, hopFloorLine, judgeTargets, renderTable, tlsPipeLines, type Row } from '../bench/table.js';

function row(key: string, kind: Row['kind'], values: Row['values']): Row {
  return { key, label: key, unit: kind === 'latency' ? 'µs' : 'MiB/s', kind, values, errors: {} };
}

t.test('single stream: PASS needs both ≥1.2× ssh and ≥1.0× ssh-aes', async (t) => {
  const pass = row('tp1', 'rate', { direct: 3000, ssh: 500, 'ssh-aes': 700, portico: 700 });
  const halfway = row('tp1', 'rate', { direct: 3000, ssh: 500, 'ssh-aes': 800, portico: 700 });
  const missing = row('tp1', 'rate', { direct: 3000, ssh: 500, portico: 700 });
  judgeTargets([pass, halfway, missing]);
  t.equal(pass.target?.pass, true, '1.40× ssh, 1.00× aes');
  t.equal(halfway.target?.pass, false, '1.40× ssh but 0.88× aes');
  t.equal(missing.target?.pass, null, 'no aes column: cannot be judged');
  t.equal(halfway.target?.detail, '1.40× ssh, 0.88× aes');
});

t.test('latency: the added µs over direct against +150 (p50) and +1,000 (p99)', async (t) => {
  const p50 = row('lat50', 'latency', { direct: 60, portico: 210 });
  const p50over = row('lat50', 'latency', { direct: 60, portico: 211 });
  const p99 = row('lat99', 'latency', { direct: 170, portico: 1100 });
  judgeTargets([p50, p50over, p99]);
  t.equal(p50.target?.pass, true, '+150 is within');
  t.equal(p50over.target?.pass, false, '+151 is not');
  t.equal(p99.target?.pass, true, '+930 within +1,000');
});

t.test('8 streams: at least Portico\'s own single stream; 100 streams: the slowest at least half the mean', async (t) => {
  const one = row('tp1', 'rate', { direct: 3000, ssh: 500, 'ssh-aes': 700, portico: 800 });
  const even = row('tp8', 'rate', { direct: 3500, portico: 800 });
  const short = row('tp8', 'rate', { direct: 3500, ssh: 2000, portico: 799 });
  const fair = row('fair100', 'fraction', { direct: 1, portico: 0.5 });
  const starved = row('fair100', 'fraction', { direct: 1, portico: 0.49 });
  judgeTargets([one, even, short, fair, starved]);
  t.equal(even.target?.pass, true, 'as fast as one stream');
  t.equal(short.target?.pass, false, 'a hair under one stream, whatever ssh did');
  t.equal(short.target?.detail, '1.00× one stream', 'printed rounded, judged exactly');
  t.equal(fair.target?.pass, true);
  t.equal(starved.target?.pass, false);
  const alone = row('tp8', 'rate', { direct: 3500, portico: 900 });
  judgeTargets([alone]);
  t.equal(alone.target?.pass, null, 'no single-stream row: cannot be judged');
});

t.test('connection rate: ≥2× ssh', async (t) => {
  const r = row('conn', 'rate', { direct: 12000, ssh: 500, portico: 999 });
  judgeTargets([r]);
  t.equal(r.target?.pass, false, '1.998× is below 2× even though it prints as 2.00×');
  t.equal(r.target?.detail, '2.00× ssh');
});

t.test('the hop floor is not a column, and its line reads Portico against it', async (t) => {
  const l50 = row('lat50', 'latency', { direct: 55, portico: 330, [HOP_FLOOR]: 222 });
  const l99 = row('lat99', 'latency', { direct: 171, portico: 864, [HOP_FLOOR]: 1401 });
  const table = renderTable([l50, l99], [
    { name: 'direct', label: 'direct' },
    { name: 'portico', label: 'Portico' },
  ]);
  t.notMatch(table, /222/, 'the floor value stays out of the table');
  t.match(table, /330 \(\+275\)/);
  const line = hopFloorLine([l50, l99]);
  t.match(line ?? '', /adds p50 \+167 µs, p99 \+1,230 µs over direct/);
  t.match(line ?? '', /Portico p50 \+275 µs = the floor \+108 µs/);
  t.equal(hopFloorLine([row('lat50', 'latency', { direct: 55, portico: 330 })]), null, 'no floor measured: no line');
});

t.test('the TLS pipes are not columns, and their lines give Portico as a multiple of each', async (t) => {
  const tp1 = row('tp1', 'rate', { direct: 3500, ssh: 600, 'ssh-aes': 900, portico: 840, [NODE_TLS]: 650, [NATIVE_TLS]: 750, [SEALED]: 1100 });
  const tp1r = row('tp1r', 'rate', { direct: 3600, portico: 700, [NODE_TLS]: 720 });
  const table = renderTable([tp1, tp1r], [
    { name: 'direct', label: 'direct' },
    { name: 'portico', label: 'Portico' },
  ]);
  t.notMatch(table, /650|720|750|1,100/, 'the references stay out of the table');
  judgeTargets([tp1]);
  t.equal(tp1.target?.detail, '1.40× ssh, 0.93× aes', 'the verdict ignores them');
  const [node, native, sealed, ...rest] = tlsPipeLines([tp1, tp1r]);
  t.match(node ?? '', /^Node TLS pipe: .* client→service 650 MiB\/s \(Portico 1\.29× it\), service→client 720 MiB\/s \(Portico 0\.97× it\)$/);
  t.match(native ?? '', /^socat TLS pipe: .* client→service 750 MiB\/s \(Portico 1\.12× it\)$/, 'only the direction it was measured in');
  t.match(sealed ?? '', /^sealed-unit pipe: .*64 KiB.* client→service 1,100 MiB\/s \(Portico 0\.76× it\)$/);
  t.same(rest, []);
  t.same(tlsPipeLines([row('tp1', 'rate', { direct: 3500, portico: 840 })]), [], 'not measured: no lines');
  t.match(tlsPipeLines([row('tp1', 'rate', { [NODE_TLS]: 650 })])[0] ?? '', /client→service 650 MiB\/s$/, 'no Portico value: the reference alone');
});
