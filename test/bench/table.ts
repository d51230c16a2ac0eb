// Renders the one results table: a row per metric, a column per path (value
// and its ratio to direct, or for latency the added µs over direct), then
// Portico's ratio to each ssh and the pass/fail of the issue's targets.
// The output is also valid Markdown, so it can be pasted into docs.

export type RowKind = 'rate' | 'latency' | 'fraction';

export interface Row {
  key: string;
  label: string;
  unit: string;
  kind: RowKind;
  /** value per path name; undefined = not measured */
  values: Record<string, number | undefined>;
  /** error text per path name when a measurement failed */
  errors: Record<string, string>;
  target?: Target;
}

export interface Target {
  text: string;
  /** null = cannot be judged (a needed column is missing) */
  pass: boolean | null;
  detail?: string;
}

export interface Column {
  name: string;
  label: string;
}

export const TUNNEL = 'portico';
export const BASE = 'direct';
export const SSH = 'ssh';
export const SSH_AES = 'ssh-aes';
/** Latency-only reference, not a column: two socat forwarders in series (peers/socat-chain.ts). */
export const HOP_FLOOR = 'hop-floor';
/** Single-stream-only reference, not a column: two Node processes piping TCP <-> TLS, no mux (peers/node-tls-pipe.ts). */
export const NODE_TLS = 'node-tls';
/** Single-stream-only reference, not a column: the same with two socat processes and OpenSSL (peers/socat-tls.ts). */
export const NATIVE_TLS = 'socat-tls';
/** Single-stream-only reference, not a column: a native loop sealing 64 KiB units, the proposed data path (peers/sealed-pipe.ts). */
export const SEALED = 'sealed-pipe';

function fmtNum(v: number): string {
  if (!Number.isFinite(v)) return '—';
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString('en-US');
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return undefined;
  return a / b;
}

function cell(row: Row, col: string): string {
  const v = row.values[col];
  if (v === undefined || !Number.isFinite(v)) return row.errors[col] ? 'error' : '—';
  const base = row.values[BASE];
  if (col === BASE || base === undefined) return fmtNum(v);
  if (row.kind === 'rate') {
    const r = ratio(v, base);
    return r === undefined ? fmtNum(v) : `${fmtNum(v)} (${r.toFixed(2)}×)`;
  }
  if (row.kind === 'latency') {
    const d = v - base;
    return `${fmtNum(v)} (${d >= 0 ? '+' : '−'}${fmtNum(Math.abs(d))})`;
  }
  return fmtNum(v);
}

function ratioCell(row: Row, other: string): string {
  if (row.kind === 'latency') {
    const a = row.values[TUNNEL];
    const b = row.values[other];
    if (a === undefined || b === undefined) return '—';
    const d = a - b;
    return `${d >= 0 ? '+' : '−'}${fmtNum(Math.abs(d))} µs`;
  }
  const r = ratio(row.values[TUNNEL], row.values[other]);
  return r === undefined ? '—' : `${r.toFixed(2)}×`;
}

/** Fill in each row's target from the issue's acceptance figures. */
export function judgeTargets(rows: Row[]): void {
  for (const row of rows) {
    const t = row.values[TUNNEL];
    switch (row.key) {
      case 'tp1': {
        const a = ratio(t, row.values[SSH]);
        const b = ratio(t, row.values[SSH_AES]);
        const pass = a === undefined || b === undefined ? null : a >= 1.2 && b >= 1.0;
        row.target = {
          text: '≥1.2× ssh, ≥1.0× aes',
          pass,
          detail: `${a?.toFixed(2) ?? '—'}× ssh, ${b?.toFixed(2) ?? '—'}× aes`,
        };
        break;
      }
      case 'tp8': {
        // The issue: 8 parallel streams at least as fast as one (Portico's own single-stream row).
        const one = rows.find((r) => r.key === 'tp1')?.values[TUNNEL];
        const a = ratio(t, one);
        row.target = { text: '≥ 1 stream', pass: a === undefined ? null : a >= 1, detail: `${a?.toFixed(2) ?? '—'}× one stream` };
        break;
      }
      case 'fair100':
        // With 100 streams none gets less than half the mean.
        row.target = { text: '≥ 0.5', pass: t === undefined ? null : t >= 0.5, detail: t === undefined ? '—' : t.toFixed(2) };
        break;
      case 'conn': {
        const a = ratio(t, row.values[SSH]);
        row.target = { text: '≥2× ssh', pass: a === undefined ? null : a >= 2, detail: `${a?.toFixed(2) ?? '—'}× ssh` };
        break;
      }
      case 'lat50':
      case 'lat99': {
        const limit = row.key === 'lat50' ? 150 : 1000;
        const base = row.values[BASE];
        const d = t === undefined || base === undefined ? undefined : t - base;
        row.target = {
          text: `≤ +${limit} µs vs direct`,
          pass: d === undefined ? null : d <= limit,
          detail: d === undefined ? '—' : `${d >= 0 ? '+' : '−'}${fmtNum(Math.abs(d))} µs`,
        };
        break;
      }
      default:
        break;
    }
  }
}

export function renderTable(rows: Row[], cols: Column[]): string {
  const hasTunnel = cols.some((c) => c.name === TUNNEL);
  const header = ['metric', ...cols.map((c) => c.label)];
  if (hasTunnel) header.push('Portico ÷ ssh', 'Portico ÷ ssh-aes', 'target', 'result');
  const body = rows.map((row) => {
    const r = [`${row.label} [${row.unit}]`, ...cols.map((c) => cell(row, c.name))];
    if (hasTunnel) {
      r.push(ratioCell(row, SSH), ratioCell(row, SSH_AES));
      r.push(row.target?.text ?? '', row.target ? (row.target.pass === null ? 'n/a' : row.target.pass ? 'PASS' : 'FAIL') : '');
    }
    return r;
  });
  const widths = header.map((h, i) => Math.max([...h].length, ...body.map((r) => [...(r[i] ?? '')].length)));
  const line = (r: string[]): string =>
    '| ' + r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ') + ' |';
  const sep = '|' + widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|';
  return [line(header), sep, ...body.map(line)].join('\n');
}

/**
 * The latency rows read against the hop floor: what two plain forwarders in
 * series add over direct, and how much of Portico's added latency is left
 * once the hops are paid for. Null when the floor was not measured.
 */
export function hopFloorLine(rows: Row[]): string | null {
  const added = (key: string, path: string): number | undefined => {
    const row = rows.find((r) => r.key === key);
    const v = row?.values[path];
    const base = row?.values[BASE];
    return v === undefined || base === undefined ? undefined : v - base;
  };
  const f50 = added('lat50', HOP_FLOOR);
  const f99 = added('lat99', HOP_FLOOR);
  if (f50 === undefined) return null;
  const signed = (d: number | undefined): string => (d === undefined ? '—' : `${d >= 0 ? '+' : '−'}${fmtNum(Math.abs(d))} µs`);
  const t50 = added('lat50', TUNNEL);
  const own = t50 === undefined ? '' : `; Portico p50 ${signed(t50)} = the floor ${signed(t50 - f50)}`;
  return `latency hop floor: socat → socat (two plain forwarders in series — the four extra loopback hops of relay + agent, no TLS, no mux) adds p50 ${signed(f50)}, p99 ${signed(f99)} over direct${own}`;
}

/**
 * The single-stream rows read against the TLS pipes: what Node's own TLS
 * streams (NODE_TLS), C code with OpenSSL (NATIVE_TLS) and a native loop
 * sealing larger units (SEALED) move through the same two-process topology
 * with no multiplexer, and Portico as a multiple of each. One line per
 * reference that was measured.
 */
export function tlsPipeLines(rows: Row[]): string[] {
  const what: Record<string, string> = {
    [NODE_TLS]: 'Node TLS pipe: two Node processes joining TCP and TLS 1.3 sockets with stream.pipe (one TLS connection per stream, no mux)',
    [NATIVE_TLS]: 'socat TLS pipe: two socat processes with OpenSSL, 256 KiB buffers, TLS 1.2 AES-128-GCM (native code, no mux)',
    [SEALED]: 'sealed-unit pipe: two native processes sealing 64 KiB AES-128-GCM units instead of 16 KiB TLS records (the proposed data path, no handshake, no mux)',
  };
  const lines: string[] = [];
  for (const ref of [NODE_TLS, NATIVE_TLS, SEALED]) {
    const parts: string[] = [];
    for (const [key, dir] of [['tp1', 'client→service'], ['tp1r', 'service→client']] as const) {
      const row = rows.find((r) => r.key === key);
      const v = row?.values[ref];
      if (v === undefined || !Number.isFinite(v)) continue;
      const r = ratio(row?.values[TUNNEL], v);
      parts.push(`${dir} ${fmtNum(v)} MiB/s${r === undefined ? '' : ` (Portico ${r.toFixed(2)}× it)`}`);
    }
    if (parts.length) lines.push(`${what[ref]!} move one stream ${parts.join(', ')}`);
  }
  return lines;
}
