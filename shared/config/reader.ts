/**
 * Reads one YAML config file against a declared key shape: rejects unknown
 * keys (with a "did you mean" hint), reads values through the parsers of
 * values.ts, and collects every problem so the operator sees them all at once,
 * each naming the full key path, the file and the line.
 */
import { readFileSync } from 'node:fs';

import { LineCounter, parseDocument, isMap, isSeq, type Document } from 'yaml';

import { PorticoError } from '../errors.js';
import { ConfigValueError, showValue } from './values.js';

/** A leaf key (any scalar or list of scalars). */
export const LEAF = 'leaf' as const;
const ITEMS = Symbol('items');

/** The allowed keys of a config file: nested mappings, leaves, and lists of mappings. */
export type Shape = typeof LEAF | { readonly [key: string]: Shape } | ListShape;
export interface ListShape {
  readonly [ITEMS]: Shape;
}

/** A list whose items each have `item`'s shape. */
export function listOf(item: Shape): ListShape {
  return { [ITEMS]: item };
}

function isListShape(s: Shape): s is ListShape {
  return typeof s === 'object' && ITEMS in s;
}

export type KeyPath = ReadonlyArray<string | number>;

/** `ports.range`, `mappings[2].name`. */
export function formatKey(path: KeyPath): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  return out;
}

export interface ConfigProblem {
  key: string;
  message: string;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Edit distance, for "did you mean" hints on unknown keys. */
function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

export class ConfigSource {
  readonly problems: ConfigProblem[] = [];

  private constructor(
    /** The file as the user named it (for messages), or undefined when there is no file. */
    readonly file: string | undefined,
    readonly root: Record<string, unknown>,
    private readonly doc: Document | undefined,
    private readonly lines: LineCounter | undefined,
  ) {}

  /** No file: every key unset. */
  static empty(): ConfigSource {
    return new ConfigSource(undefined, {}, undefined, undefined);
  }

  /** Reads and parses `absPath`; throws CONFIG_INVALID for unreadable files and YAML syntax errors. */
  static fromFile(absPath: string, displayName: string): ConfigSource {
    let text: string;
    try {
      text = readFileSync(absPath, 'utf8');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.message;
      throw new PorticoError('CONFIG_INVALID', `cannot read config file ${displayName}: ${why}`, { key: 'config', file: displayName }, { cause: err });
    }
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
    if (doc.errors.length > 0) {
      const first = doc.errors[0]!;
      const pos = lines.linePos(first.pos[0]);
      const dup = first.code === 'DUPLICATE_KEY' ? ` (key "${/^[^\s:]*/.exec(text.slice(first.pos[0]))![0]}" appears twice)` : '';
      throw new PorticoError(
        'CONFIG_INVALID',
        `${displayName} is not valid YAML (line ${pos.line}, column ${pos.col}): ${first.message.split('\n')[0]}${dup}`,
        { key: 'config', file: displayName, line: pos.line },
      );
    }
    const root: unknown = doc.toJS({ maxAliasCount: 100 });
    if (root !== null && root !== undefined && !isPlainObject(root)) {
      throw new PorticoError('CONFIG_INVALID', `${displayName} must be a mapping of config keys at the top level, got ${Array.isArray(root) ? 'a list' : showValue(root)}`, {
        key: 'config',
        file: displayName,
      });
    }
    return new ConfigSource(displayName, (root ?? {}) as Record<string, unknown>, doc, lines);
  }

  /** ` in relay.yaml (line 7)` for a key present in the file; ` in relay.yaml` otherwise. */
  where(path: KeyPath): string {
    if (this.file === undefined) return '';
    const line = this.lineOf(path);
    return line === undefined ? ` in ${this.file}` : ` in ${this.file} (line ${line})`;
  }

  private lineOf(path: KeyPath): number | undefined {
    if (!this.doc || !this.lines || path.length === 0) return undefined;
    // The key's own line: look up the pair in its parent mapping.
    const parent = path.length === 1 ? this.doc.contents : this.doc.getIn(path.slice(0, -1), true);
    const last = path[path.length - 1]!;
    let offset: number | undefined;
    if (isMap(parent)) {
      const pair = parent.items.find((p) => (p.key as { value?: unknown } | null)?.value === last);
      const k = pair?.key as { range?: [number, number, number] } | null | undefined;
      offset = k?.range?.[0];
    } else if (isSeq(parent) && typeof last === 'number') {
      offset = (parent.items[last] as { range?: [number, number, number] } | undefined)?.range?.[0];
    }
    return offset === undefined ? undefined : this.lines.linePos(offset).line;
  }

  /** Records a problem with a key. */
  fail(path: KeyPath | string, message: string): void {
    const key = typeof path === 'string' ? path : formatKey(path);
    this.problems.push({ key, message });
  }

  /** Raw value at `path`; null counts as unset. */
  get(path: KeyPath): unknown {
    let cur: unknown = this.root;
    for (const seg of path) {
      if (cur === null || typeof cur !== 'object') return undefined;
      cur = (cur as Record<string | number, unknown>)[seg];
    }
    return cur === null ? undefined : cur;
  }

  has(path: KeyPath): boolean {
    return this.get(path) !== undefined;
  }

  /**
   * Pass 1: every key in the file must be declared in `shape`, and mappings
   * and lists must be mappings and lists.
   */
  checkShape(shape: Shape, value: unknown = this.root, path: KeyPath = []): void {
    if (shape === LEAF || value === null || value === undefined) return;
    if (isListShape(shape)) {
      if (!Array.isArray(value)) {
        this.fail(path, `config key "${formatKey(path)}"${this.where(path)} must be a list, got ${showValue(value)}`);
        return;
      }
      value.forEach((item, i) => this.checkShape(shape[ITEMS], item, [...path, i]));
      return;
    }
    if (!isPlainObject(value)) {
      const what = path.length === 0 ? 'the file' : `config key "${formatKey(path)}"`;
      this.fail(path, `${what}${this.where(path)} must be a mapping of keys (${Object.keys(shape).join(', ')}), got ${showValue(value)}`);
      return;
    }
    for (const [k, v] of Object.entries(value)) {
      const sub = (shape as Record<string, Shape>)[k];
      const keyPath = [...path, k];
      if (sub === undefined) {
        const known = Object.keys(shape);
        const best = known.map((c) => [c, distance(k, c)] as const).sort((a, b) => a[1] - b[1])[0];
        const hint = best && best[1] <= Math.max(2, Math.floor(k.length / 3)) ? `; did you mean "${formatKey([...path, best[0]])}"?` : `; known keys here: ${known.join(', ')}`;
        this.fail(keyPath, `unknown config key "${formatKey(keyPath)}"${this.where(keyPath)}${hint}`);
        continue;
      }
      this.checkShape(sub, v, keyPath);
    }
  }

  /**
   * Parses the value at `path` (or `fallback` when unset) with `parse`;
   * records a problem naming the key and returns undefined on failure.
   */
  read<T>(path: KeyPath, parse: (raw: unknown) => T, fallback?: unknown): T | undefined {
    const fromFile = this.get(path);
    const raw = fromFile ?? fallback;
    if (raw === undefined) return undefined;
    try {
      return parse(raw);
    } catch (err) {
      if (!(err instanceof ConfigValueError)) throw err;
      const origin = fromFile !== undefined ? this.where(path) : ' (default)';
      this.fail(path, `bad value for config key "${formatKey(path)}"${origin}: ${err.message}`);
      return undefined;
    }
  }

  /** Throws one CONFIG_INVALID listing every recorded problem, if any. */
  throwIfProblems(): void {
    if (this.problems.length === 0) return;
    throw configError(this.problems, this.file);
  }
}

/** One CONFIG_INVALID for a list of problems; `details.key` is the first problem's key. */
export function configError(problems: ConfigProblem[], file?: string): PorticoError {
  const first = problems[0]!;
  const message =
    problems.length === 1
      ? first.message
      : `${problems.length} config errors${file ? ` in ${file}` : ''}:\n  - ${problems.map((p) => p.message).join('\n  - ')}`;
  return new PorticoError('CONFIG_INVALID', message, { key: first.key, ...(file ? { file } : {}), errors: problems });
}
