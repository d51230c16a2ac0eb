// The direct path (relay/vhost/direct-exchange.ts) writes request and response heads
// from lines the parsers cut out as they go, instead of rebuilding them field by field
// through headers.ts. These properties hold it to the general rules: for any head the
// parsers accept, the direct path's head carries exactly the fields forwardRequestHeaders /
// forwardResponseHeaders would send, with the same values in the same order (Host aside,
// which the direct path states first), or the parser says the head needs the general rules.
import t from 'tap';
import fc from 'fast-check';
import { parseRequestHead, type RequestHead } from '../../relay/vhost/request-head.js';
import { ResponseParser, type ResponseHead } from '../../relay/vhost/response-parser.js';
import { forwardRequestHeaders, forwardResponseHeaders, requestFraming, serializeRequestHead } from '../../relay/vhost/headers.js';
import { upstreamRequestHead } from '../../relay/vhost/direct-exchange.js';

/** Field names the rules treat specially, in mixed case, and ordinary ones. */
const NAMES = [
  'Connection', 'connection', 'Keep-Alive', 'Proxy-Connection', 'Proxy-Authorization', 'Proxy-Authenticate', 'TE', 'Trailer', 'HTTP2-Settings',
  'X-Forwarded-For', 'x-forwarded-proto', 'X-Forwarded-Host', 'Forwarded', 'X-Real-IP', 'Content-Length', 'Date', 'DATE',
  'Accept', 'User-Agent', 'Cookie', 'X-Custom', 'x-private-hop', 'Content-Type', 'Content-Disposition', 'Server', 'ETag',
];
const TOKENS = ['keep-alive', 'close', 'Upgrade', 'te', 'x-private-hop', 'X-Custom', 'content-length', 'host', 'proxy-connection'];
const value = fc.stringMatching(/^[!-~]([ !-~]{0,12}[!-~])?$/);
const connectionValue = fc.array(fc.constantFrom(...TOKENS), { minLength: 1, maxLength: 3 }).map((a) => a.join(', '));
const field = fc.constantFrom(...NAMES).chain((name) =>
  (name.toLowerCase() === 'connection' ? connectionValue : name.toLowerCase() === 'content-length' ? fc.constantFrom('0', '5', '17') : value).map((v) => [name, v] as const),
);

/** "name: value" lines of a serialised head, after its first line. */
function fieldsOf(head: string): string[] {
  const lines = head.split('\r\n');
  if (lines.at(-1) !== '' || lines.at(-2) !== '') throw new Error(`no blank line: ${JSON.stringify(head)}`);
  return lines.slice(1, -2);
}

t.test('request heads: the direct path forwards the fields the general rules forward', async (t) => {
  let direct = 0;
  fc.assert(
    fc.property(fc.array(field, { maxLength: 10 }), fc.constantFrom('GET', 'POST', 'HEAD', 'DELETE', 'PUT'), fc.boolean(), (fields, method, rewrite) => {
      // One Content-Length at most (two are deferred to node:http, never the direct path).
      let cl = false;
      const kept = fields.filter(([n]) => (n.toLowerCase() === 'content-length' ? !cl && (cl = true) : true));
      const text = `${method} /p?q=1 HTTP/1.1\r\n${kept.map(([n, v]) => `${n}: ${v}\r\n`).join('')}Host: app.example.com:443\r\n\r\n`;
      const head = parseRequestHead(Buffer.from(text, 'latin1'), 64 * 1024) as RequestHead;
      if (typeof head === 'string') throw new Error(`not accepted: ${head}`);
      if (head.forward !== null) direct++;
      const rewriteHost = rewrite ? 'localhost:8888' : null;
      const mine = upstreamRequestHead(head, '192.0.2.7', rewriteHost);
      const general = serializeRequestHead(
        head.method,
        head.url,
        forwardRequestHeaders(head.rawHeaders, { clientIp: '192.0.2.7', host: head.headers.host!, rewriteHost, upgrade: null }),
        requestFraming(head.method, head.headers['content-length'], false),
      );
      if (mine.slice(0, mine.indexOf('\r\n')) !== general.slice(0, general.indexOf('\r\n'))) throw new Error(`request lines differ:\n${mine}\n---\n${general}`);
      const a = fieldsOf(mine);
      const b = fieldsOf(general);
      const isHost = (l: string) => l.toLowerCase().startsWith('host:');
      if (JSON.stringify(a.filter((l) => !isHost(l))) !== JSON.stringify(b.filter((l) => !isHost(l)))) throw new Error(`fields differ:\n${mine}\n---\n${general}`);
      if (JSON.stringify(a.filter(isHost)) !== JSON.stringify(b.filter(isHost))) throw new Error(`Host differs:\n${mine}\n---\n${general}`);
    }),
    { numRuns: 600 },
  );
  t.ok(direct > 100, `${direct} of 600 heads took the line-by-line path`);
});

t.test('request heads: a Connection header naming another field takes the general rules', async (t) => {
  const h = parseRequestHead(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\r\n', 'latin1'), 1024) as RequestHead;
  t.equal(h.forward, null);
  t.notMatch(upstreamRequestHead(h, '192.0.2.1', null), /X-Hop/i, 'the named field is dropped all the same');
  const k = parseRequestHead(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nAccept: x\r\nKeep-Alive: 5\r\n\r\n', 'latin1'), 1024) as RequestHead;
  t.equal(k.forward, 'Accept: x\r\n', 'hop-by-hop lines cut out, the rest as sent');
});

function parseResponse(text: string): ResponseHead {
  let got: ResponseHead | null = null;
  const p = new ResponseParser({ onHead: (h) => (got = h), onBody: () => undefined, onComplete: () => undefined }, 64 * 1024);
  p.reset(false);
  p.execute(Buffer.from(text, 'latin1'));
  if (got === null) throw new Error('no head');
  return got;
}

/** [name, value, …] of CRLF-ended lines, values trimmed as the parser trims them. */
function pairsOf(lines: string): string[] {
  const out: string[] = [];
  for (const l of lines.split('\r\n').slice(0, -1)) {
    const c = l.indexOf(':');
    out.push(l.slice(0, c), l.slice(c + 1).replace(/^[ \t]+|[ \t]+$/g, ''));
  }
  return out;
}

t.test('response heads: the pass-through lines are the fields the general rules forward', async (t) => {
  let plain = 0;
  fc.assert(
    fc.property(fc.array(field, { maxLength: 10 }), fc.boolean(), (fields, spaced) => {
      let cl = false;
      const kept = fields.filter(([n]) => (n.toLowerCase() === 'content-length' ? !cl && (cl = true) : true));
      const sep = spaced ? ':  ' : ':';
      const h = parseResponse(`HTTP/1.1 200 OK\r\n${kept.map(([n, v]) => `${n}${sep}${v}\r\n`).join('')}\r\n`);
      const lines = h.lines;
      const extra = kept.some(([n, v]) => n.toLowerCase() === 'connection' && v.split(',').some((x) => ['close', 'x-private-hop', 'x-custom'].includes(x.trim().toLowerCase())));
      if (extra !== (lines === null)) throw new Error(`lines ${lines === null ? 'null' : 'given'} for ${JSON.stringify(kept)}`);
      if (lines === null) return;
      plain++;
      if (JSON.stringify(pairsOf(lines)) !== JSON.stringify(forwardResponseHeaders(h.rawHeaders))) throw new Error(`differ: ${JSON.stringify(lines)}`);
      const hasDate = kept.some(([n]) => n.toLowerCase() === 'date');
      if (h.hasDate !== hasDate) throw new Error('hasDate');
    }),
    { numRuns: 600 },
  );
  t.ok(plain > 100, `${plain} of 600 heads pass line by line`);
});

t.test('response heads that need the general rules: no pass-through lines', async (t) => {
  const cases: Record<string, string> = {
    'Transfer-Encoding': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    'a bare LF': 'HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 0\r\n\r\n',
    'a bare LF after the status line': 'HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n',
    'a control character in a value': 'HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 0\r\n\r\n',
    'a CR inside a value': 'HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n',
    'Connection naming a field': 'HTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\nContent-Length: 0\r\n\r\n',
  };
  for (const [what, text] of Object.entries(cases)) t.equal(parseResponse(text).lines, null, what);
  const h = parseResponse('HTTP/1.1 200 OK\r\nServer: s\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 3\r\nDate: d\r\n\r\nabc');
  t.equal(h.lines, 'Server: s\r\nContent-Length: 3\r\nDate: d\r\n', 'hop-by-hop lines cut out, the rest byte for byte');
  t.equal(h.contentLength, 3);
  t.equal(h.hasDate, true);
  t.same(h.rawHeaders, ['Server', 's', 'Connection', 'keep-alive', 'Keep-Alive', 'timeout=5', 'Content-Length', '3', 'Date', 'd'], 'the raw list on demand');
});
