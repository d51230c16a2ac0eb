/** Plain-text output helpers shared by CLI commands. */

/** Left-aligned columns separated by two spaces; the first row is the header. */
export function formatTable(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** `key  value` lines with the keys aligned. */
export function formatFields(fields: Array<[string, string]>): string {
  return formatTable(fields.map(([k, v]) => [k, v]));
}

/** Ascending ports as compact runs: `20000-20019`, `20000-20004,20010`. */
export function formatPortRuns(ports: number[]): string {
  if (ports.length === 0) return '-';
  const sorted = [...ports].sort((a, b) => a - b);
  const runs: string[] = [];
  let start = sorted[0]!;
  let prev = start;
  for (const p of sorted.slice(1).concat(Number.NaN)) {
    if (p === prev + 1) {
      prev = p;
      continue;
    }
    runs.push(start === prev ? String(start) : `${start}-${prev}`);
    start = prev = p;
  }
  return runs.join(',');
}
