// Keeps the one list of error codes (shared/errors.ts), its documentation
// (docs/errors.md) and the wire enum (proto/portico/v1/control.proto) in step.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CODES, errorCodeFromWire, errorCodeToWire, type ErrorCode } from '../../shared/errors.js';

const root = process.cwd();
const docsPath = join(root, 'docs/errors.md');
const protoPath = join(root, 'proto/portico/v1/control.proto');
const codes = Object.entries(ERROR_CODES) as [ErrorCode, (typeof ERROR_CODES)[ErrorCode]][];

interface DocRow {
  status: number;
  wire: number;
  meaning: string;
}

/** Rows of the form `| \`CODE\` | status | wire | meaning |`. */
function parseDocTable(md: string): Map<string, DocRow> {
  const rows = new Map<string, DocRow>();
  for (const line of md.split('\n')) {
    const m = /^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|(.*)\|\s*$/.exec(line);
    if (!m) continue;
    if (rows.has(m[1]!)) throw new Error(`docs/errors.md lists ${m[1]} twice`);
    rows.set(m[1]!, { status: Number(m[2]), wire: Number(m[3]), meaning: m[4]!.trim() });
  }
  return rows;
}

/** name -> number of the values of `enum ErrorCode { … }`, or undefined if there is none. */
function parseProtoEnum(proto: string): Map<string, number> | undefined {
  const noComments = proto.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  const m = /\benum\s+ErrorCode\s*\{([^}]*)\}/.exec(noComments);
  if (!m) return undefined;
  const values = new Map<string, number>();
  for (const v of m[1]!.matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(-?\d+)\s*(?:\[[^\]]*\])?\s*;/g)) {
    values.set(v[1]!, Number(v[2]));
  }
  return values;
}

t.test('ERROR_CODES is well-formed', async (t) => {
  t.ok(codes.length > 0, 'there are codes');
  const wires = new Map<number, string>();
  for (const [code, v] of codes) {
    t.match(code, /^[A-Z][A-Z0-9_]*$/, `${code} is UPPER_SNAKE`);
    t.ok(Number.isInteger(v.wire) && v.wire > 0, `${code}: wire ${v.wire} is a positive integer (0 is UNSPECIFIED)`);
    t.ok(Number.isInteger(v.status) && v.status >= 400 && v.status <= 599, `${code}: status ${v.status} is 4xx/5xx`);
    t.ok(v.doc.trim().length > 0, `${code} has a doc line`);
    const other = wires.get(v.wire);
    t.notOk(other, `wire ${v.wire} of ${code} is unique${other ? ` (also ${other})` : ''}`);
    wires.set(v.wire, code);
  }
});

t.test('wire helpers round-trip', async (t) => {
  for (const [code, v] of codes) {
    t.equal(errorCodeToWire(code), v.wire, `${code} -> ${v.wire}`);
    t.equal(errorCodeFromWire(v.wire), code, `${v.wire} -> ${code}`);
  }
  t.equal(errorCodeFromWire(0), 'INTERNAL', 'unknown wire number maps to INTERNAL');
});

t.test('docs/errors.md matches ERROR_CODES', async (t) => {
  if (!existsSync(docsPath)) {
    t.fail(`${docsPath} is missing`);
    return;
  }
  const rows = parseDocTable(readFileSync(docsPath, 'utf8'));
  for (const [code, v] of codes) {
    const row = rows.get(code);
    if (!row) {
      t.fail(`${code} is not documented in docs/errors.md`);
      continue;
    }
    t.equal(row.status, v.status, `${code}: documented HTTP status`);
    t.equal(row.wire, v.wire, `${code}: documented wire number`);
    t.ok(row.meaning.length > 0, `${code}: documented meaning`);
  }
  for (const code of rows.keys()) {
    t.ok(code in ERROR_CODES, `docs/errors.md row ${code} is a code in shared/errors.ts`);
  }
});

const protoEnum = existsSync(protoPath) ? parseProtoEnum(readFileSync(protoPath, 'utf8')) : undefined;
const protoSkip = !existsSync(protoPath)
  ? 'proto/portico/v1/control.proto not written yet: enum check skipped'
  : !protoEnum
    ? 'control.proto has no `enum ErrorCode` yet: enum check skipped'
    : false;

t.test('proto ErrorCode enum matches ERROR_CODES', { skip: protoSkip }, async (t) => {
  const values = protoEnum!;
  // Accept both the bare name and the style-guide prefixed name.
  const lookup = (code: string): [string, number] | undefined => {
    for (const name of [code, `ERROR_CODE_${code}`]) {
      const n = values.get(name);
      if (n !== undefined) return [name, n];
    }
    return undefined;
  };
  for (const [code, v] of codes) {
    const found = lookup(code);
    if (!found) {
      t.fail(`${code} has no value in enum ErrorCode of control.proto`);
      continue;
    }
    t.equal(found[1], v.wire, `${code}: enum ${found[0]} = ${v.wire}`);
  }
  const byWire = new Map<number, ErrorCode>(codes.map(([code, v]) => [v.wire, code]));
  for (const [name, n] of values) {
    if (n === 0) {
      t.match(name, /UNSPECIFIED|UNKNOWN/, `enum value 0 (${name}) is the proto3 default, not a real code`);
      continue;
    }
    const code = byWire.get(n);
    t.ok(code !== undefined && (name === code || name === `ERROR_CODE_${code}`), `enum ${name} = ${n} is a code in shared/errors.ts with that wire number`);
  }
});
