// The web proxy's HTTP/1.1 response parser (relay/vhost/response-parser.ts):
// heads, every body framing, interim 1xx, keep-alive sequences — all under
// arbitrary splits of the byte stream — and the malformed inputs it refuses.
import t from 'tap';
import fc from 'fast-check';
import { ResponseParser, type ResponseHead } from '../../relay/vhost/response-parser.js';

interface Parsed {
  head: ResponseHead | null;
  body: Buffer[];
  completions: number;
}

/** Feeds `wire` cut at `cuts` through one parser, one response per entry of `headRequests`; returns what it saw and the unused bytes. */
function parseAll(wire: Buffer, cuts: number[], headRequests: boolean[], maxHead = 64 * 1024): { parsed: Parsed[]; leftover: number; finishErr: Error | null } {
  const parsed: Parsed[] = [];
  let cur: Parsed = { head: null, body: [], completions: 0 };
  const p = new ResponseParser(
    {
      onHead: (h) => (cur.head = h),
      onBody: (b) => cur.body.push(Buffer.from(b)),
      onComplete: () => cur.completions++,
    },
    maxHead,
  );
  let i = 0;
  p.reset(headRequests[0] ?? false);
  const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
  let prev = 0;
  let leftover = 0;
  for (const point of [...points, wire.length]) {
    const piece = wire.subarray(prev, point);
    prev = point;
    let off = 0;
    while (off < piece.length) {
      if (i >= headRequests.length) {
        leftover += piece.length - off;
        break;
      }
      off += p.execute(piece.subarray(off));
      if (p.done) {
        parsed.push(cur);
        cur = { head: null, body: [], completions: 0 };
        if (++i < headRequests.length) p.reset(headRequests[i]!);
      }
    }
  }
  let finishErr: Error | null = null;
  if (i < headRequests.length) {
    try {
      p.finish();
      if (p.done) parsed.push(cur);
    } catch (err) {
      finishErr = err as Error;
    }
  }
  return { parsed, leftover, finishErr };
}

type Framing = 'length' | 'chunked' | 'no-content' | 'head' | 'close';

interface Spec {
  status: number;
  reason: string;
  headers: Array<[string, string]>;
  body: Uint8Array;
  framing: Framing;
  chunkCuts: number[];
  interim: boolean;
  eol: string;
  connectionClose: boolean;
}

const RESERVED = new Set(['content-length', 'transfer-encoding', 'connection', 'content-type', 'content-disposition']);
const headerName = fc.stringMatching(/^[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,15}$/).filter((n) => !RESERVED.has(n.toLowerCase()));
const headerValue = fc.oneof(fc.constant(''), fc.stringMatching(/^[\x21-\x7e]([\x20-\x7e\t]{0,30}[\x21-\x7e])?$/));

function spec(framings: Framing[]): fc.Arbitrary<Spec> {
  return fc.record({
    status: fc.integer({ min: 200, max: 599 }).filter((s) => s !== 204 && s !== 304),
    reason: fc.constantFrom('OK', '', 'Not Found', 'Some Reason With Spaces'),
    headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 8 }),
    body: fc.uint8Array({ maxLength: 3000 }),
    framing: fc.constantFrom(...framings),
    chunkCuts: fc.array(fc.nat(3000), { maxLength: 6 }),
    interim: fc.boolean(),
    eol: fc.constantFrom('\r\n', '\n'),
    connectionClose: fc.boolean(),
  });
}

/** The bytes of a response as an app could send them. */
function serialize(s: Spec): Buffer {
  const e = s.eol;
  const parts: Buffer[] = [];
  if (s.interim) parts.push(Buffer.from(`HTTP/1.1 103 Early Hints${e}Link: </a.css>; rel=preload${e}${e}HTTP/1.1 100 Continue${e}${e}`));
  const status = s.framing === 'no-content' ? 204 : s.status;
  let head = `HTTP/1.1 ${status}${s.reason ? ` ${s.reason}` : ''}${e}`;
  for (const [n, v] of s.headers) head += `${n}:${v ? ` ${v}` : ''}${e}`;
  if (s.connectionClose) head += `Connection: close${e}`;
  const body = Buffer.from(s.body);
  switch (s.framing) {
    case 'length':
    case 'head':
      head += `Content-Length: ${body.length}${e}`;
      break;
    case 'chunked':
      head += `Transfer-Encoding: chunked${e}`;
      break;
    default:
      break;
  }
  parts.push(Buffer.from(head + e, 'latin1'));
  if (s.framing === 'length' || s.framing === 'close') parts.push(body);
  if (s.framing === 'chunked') {
    const points = [...new Set(s.chunkCuts.map((c) => c % (body.length + 1)))].filter((c) => c > 0).sort((a, b) => a - b);
    let prev = 0;
    let n = 0;
    for (const p of [...points, body.length]) {
      if (p === prev) continue;
      const ext = n++ % 2 === 1 ? ';name=value' : '';
      parts.push(Buffer.from(`${(p - prev).toString(16)}${ext}${e}`), body.subarray(prev, p), Buffer.from(e));
      prev = p;
    }
    parts.push(Buffer.from(n % 2 === 1 ? `0${e}X-Trailer: t${e}${e}` : `0${e}${e}`));
  }
  return Buffer.concat(parts);
}

function check(s: Spec, got: Parsed | undefined): boolean {
  if (!got || !got.head || got.completions !== 1) return false;
  const expectStatus = s.framing === 'no-content' ? 204 : s.status;
  if (got.head.statusCode !== expectStatus || got.head.statusMessage !== s.reason) return false;
  const raw = got.head.rawHeaders;
  for (let i = 0; i < s.headers.length; i++) {
    if (raw[i * 2] !== s.headers[i]![0] || raw[i * 2 + 1] !== s.headers[i]![1]) return false;
  }
  const bodyExpected = s.framing === 'no-content' || s.framing === 'head' ? Buffer.alloc(0) : Buffer.from(s.body);
  if (!Buffer.concat(got.body).equals(bodyExpected)) return false;
  return got.head.keepAlive === (!s.connectionClose && s.framing !== 'close');
}

t.test('keep-alive sequences of responses survive any split of the byte stream', async (t) => {
  fc.assert(
    fc.property(fc.array(spec(['length', 'chunked', 'no-content', 'head']), { minLength: 1, maxLength: 5 }), fc.array(fc.nat(20_000), { maxLength: 40 }), (specs, cuts) => {
      const wire = Buffer.concat(specs.map(serialize));
      const { parsed, leftover, finishErr } = parseAll(
        wire,
        cuts,
        specs.map((s) => s.framing === 'head'),
      );
      return finishErr === null && leftover === 0 && parsed.length === specs.length && specs.every((s, i) => check(s, parsed[i]));
    }),
    { numRuns: 500 },
  );
  t.pass('500 random response sequences, random split points');
});

t.test('a close-delimited body ends with the stream', async (t) => {
  fc.assert(
    fc.property(spec(['close']), fc.array(fc.nat(5000), { maxLength: 20 }), (s, cuts) => {
      const { parsed, finishErr } = parseAll(serialize(s), cuts, [false]);
      return finishErr === null && check(s, parsed[0]) && parsed[0]!.head!.keepAlive === false;
    }),
    { numRuns: 200 },
  );
  t.pass('200 random close-delimited responses');
});

t.test('a response cut short is an error at end of stream, never a complete response', async (t) => {
  fc.assert(
    fc.property(spec(['length', 'chunked']), fc.nat(), fc.array(fc.nat(5000), { maxLength: 10 }), (s, cutAt, cuts) => {
      const wire = serialize(s);
      const prefix = wire.subarray(0, cutAt % wire.length);
      const { parsed, finishErr } = parseAll(prefix, cuts, [false]);
      return parsed.length === 0 && finishErr !== null;
    }),
    { numRuns: 300 },
  );
  t.pass('300 truncated responses');
});

function parseOne(text: string | Buffer, opts: { maxHead?: number; head?: boolean } = {}): Parsed & { error: string | null; keep: boolean } {
  const wire = typeof text === 'string' ? Buffer.from(text, 'latin1') : text;
  try {
    const { parsed, finishErr } = parseAll(wire, [], [opts.head ?? false], opts.maxHead);
    const p = parsed[0] ?? { head: null, body: [], completions: 0 };
    return { ...p, error: finishErr ? ((finishErr as NodeJS.ErrnoException).code ?? 'ERR') : null, keep: p.head?.keepAlive ?? false };
  } catch (err) {
    return { head: null, body: [], completions: 0, error: (err as NodeJS.ErrnoException).code ?? 'ERR', keep: false };
  }
}

t.test('framing rules', async (t) => {
  const hello = parseOne('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello');
  t.equal(Buffer.concat(hello.body).toString(), 'hello');
  t.equal(hello.head?.contentType, 'text/plain');
  t.ok(hello.keep, 'HTTP/1.1 with a length: reusable');
  const att = parseOne('HTTP/1.1 200 OK\r\nContent-Disposition: attachment; filename=x\r\nContent-Length: 0\r\n\r\n');
  t.equal(att.head?.contentDisposition, 'attachment; filename=x');
  t.equal(att.completions, 1, 'Content-Length: 0 completes at the head');
  t.equal(parseOne('HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n').completions, 1, '304 has no body whatever Content-Length says');
  t.equal(parseOne('HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n', { head: true }).completions, 1, 'HEAD response has no body');
  t.equal(parseOne('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', { head: true }).completions, 1, 'HEAD response with chunked has no body');
  t.notOk(parseOne('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok').keep, 'HTTP/1.0: not reusable');
  t.notOk(parseOne('HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 2\r\n\r\nok').keep, 'Connection: close: not reusable');
  t.ok(parseOne('HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok').keep);
  const both = parseOne('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n');
  t.equal(Buffer.concat(both.body).toString(), 'ok', 'chunked wins over Content-Length');
  t.notOk(both.keep, 'a response with both framings is never reused');
  const gz = parseOne('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nrawbytes');
  t.equal(Buffer.concat(gz.body).toString(), 'rawbytes', 'a non-chunked transfer coding is read until close');
  t.notOk(gz.keep);
  t.equal(Buffer.concat(parseOne('HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok').body).toString(), 'ok', 'repeated identical lengths are one length');
  t.equal(Buffer.concat(parseOne('\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok').body).toString(), 'ok', 'stray CRLF before a response is skipped');
  const spaced = parseOne('HTTP/1.1 200 OK\r\nX-A:   padded value  \r\nX-Empty:\r\nContent-Length: 0\r\n\r\n');
  t.same(spaced.head?.rawHeaders.slice(0, 4), ['X-A', 'padded value', 'X-Empty', ''], 'values trimmed, empty values kept');
  const latin = parseOne(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nX-L: caf'), Buffer.from([0xe9]), Buffer.from('\r\nContent-Length: 0\r\n\r\n')]));
  t.equal(latin.head?.rawHeaders[1], 'caf\u00e9', 'obs-text read as latin1, like node');
  const early = parseOne('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx');
  t.equal(early.head?.statusCode, 201, 'interim responses are skipped');
  t.equal(early.completions, 1);
});

t.test('malformed responses are refused with HPE codes', async (t) => {
  const cases: Array<[string, string]> = [
    ['garbage\r\n\r\n', 'HPE_INVALID_CONSTANT'],
    ['HTTP/2.0 200 OK\r\n\r\n', 'HPE_INVALID_CONSTANT'],
    ['HTTP/1.2 200 OK\r\n\r\n', 'HPE_INVALID_VERSION'],
    ['HTTP/1.1 2x0 OK\r\n\r\n', 'HPE_INVALID_STATUS'],
    ['HTTP/1.1 099 Low\r\n\r\n', 'HPE_INVALID_STATUS'],
    ['HTTP/1.1 2000 OK\r\n\r\n', 'HPE_INVALID_STATUS'],
    ['HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n', 'HPE_INVALID_STATUS'],
    ['HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['HTTP/1.1 200 OK\r\nNoColon\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['HTTP/1.1 200 OK\r\n: empty name\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['HTTP/1.1 200 OK\r\nX-A: a\r\n folded\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 'HPE_INVALID_CONTENT_LENGTH'],
    ['HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', 'HPE_INVALID_CONTENT_LENGTH'],
    ['HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n', 'HPE_INVALID_CONTENT_LENGTH'],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'HPE_INVALID_CHUNK_SIZE'],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n', 'HPE_INVALID_CHUNK_SIZE'],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\n', 'HPE_INVALID_CHUNK_SIZE'],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n', 'HPE_STRICT'],
    ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc', 'HPE_INVALID_EOF_STATE'],
    ['HTTP/1.1 200 OK\r\nContent-Len', 'HPE_INVALID_EOF_STATE'],
    ['', 'ECONNRESET'],
  ];
  for (const [text, code] of cases) t.equal(parseOne(text).error, code, JSON.stringify(text));
});

t.test('control characters in field values pass through (res.writeHead refuses them); they never move a boundary', async (t) => {
  const r = parseOne('HTTP/1.1 200 OK\r\nX-A: a\rb\r\nX-B: c\x00d\r\nContent-Length: 2\r\n\r\nok');
  t.equal(r.head?.statusMessage, 'OK');
  t.same(r.head?.rawHeaders, ['X-A', 'a\rb', 'X-B', 'c\x00d', 'Content-Length', '2']);
  t.equal(Buffer.concat(r.body).toString(), 'ok');
});

t.test('a reason phrase with a control character is an invalid status (node would keep it on the response and fail the error answer too)', async (t) => {
  for (const reason of ['O\x01K', 'OK\rX', 'O\x00K', 'O\x7fK']) t.equal(parseOne(`HTTP/1.1 200 ${reason}\r\nContent-Length: 2\r\n\r\nok`).error, 'HPE_INVALID_STATUS', JSON.stringify(reason));
  t.equal(parseOne('HTTP/1.1 200 Fine\tthanks \xe9\r\nContent-Length: 2\r\n\r\nok').head?.statusMessage, 'Fine\tthanks \xe9', 'HTAB, SP and obs-text are fine');
});

t.test('the head size limit holds whether the head comes whole or in pieces', async (t) => {
  const big = `HTTP/1.1 200 OK\r\nX-Big: ${'x'.repeat(2000)}\r\nContent-Length: 0\r\n\r\n`;
  t.equal(parseOne(big, { maxHead: 1024 }).error, 'HPE_HEADER_OVERFLOW', 'whole');
  t.equal(parseOne(big, { maxHead: 4096 }).completions, 1, 'under the limit');
  const endless = Buffer.from(`HTTP/1.1 200 OK\r\nX-Big: ${'x'.repeat(5000)}`);
  let code: string | null = null;
  const p = new ResponseParser({ onHead: () => undefined, onBody: () => undefined, onComplete: () => undefined }, 1024);
  p.reset(false);
  try {
    for (let i = 0; i < endless.length; i += 100) p.execute(endless.subarray(i, i + 100));
  } catch (err) {
    code = (err as NodeJS.ErrnoException).code ?? null;
  }
  t.equal(code, 'HPE_HEADER_OVERFLOW', 'in 100-byte pieces, refused once past the limit');
});

t.test('bytes after a complete response are reported unused', async (t) => {
  const wire = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA');
  const p = new ResponseParser({ onHead: () => undefined, onBody: () => undefined, onComplete: () => undefined }, 1024);
  p.reset(false);
  const used = p.execute(wire);
  t.ok(p.done);
  t.equal(wire.length - used, 5, 'the proxy closes such a stream instead of pooling it');
});

t.test('upgrade mode: a 101 is the final head and execute() returns where the new protocol starts; interim 1xx before it are skipped', async (t) => {
  const heads: ResponseHead[] = [];
  let completions = 0;
  const p = new ResponseParser({ onHead: (h) => heads.push(h), onBody: () => t.fail('no body'), onComplete: () => completions++ }, 1024);
  p.reset(false, true);
  const wire = Buffer.from('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi', 'latin1');
  const used = p.execute(wire);
  t.equal(heads.length, 1);
  t.equal(heads[0]?.statusCode, 101);
  t.same(heads[0]?.rawHeaders, ['Upgrade', 'websocket', 'Connection', 'Upgrade'], 'its hop-by-hop headers as sent');
  t.equal(completions, 1);
  t.ok(p.done);
  t.equal(wire.subarray(used).toString('latin1'), '\x81\x02hi', 'the frame after the head is not part of the response');
  p.reset(false, false);
  t.throws(() => p.execute(Buffer.from('HTTP/1.1 101 Switching Protocols\r\n\r\n')), { code: 'HPE_INVALID_STATUS' }, 'without upgrade mode a 101 is invalid');
});
