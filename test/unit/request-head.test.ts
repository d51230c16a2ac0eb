import t from 'tap';
import fc from 'fast-check';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { parseRequestHead, type RequestHead } from '../../relay/vhost/request-head.js';

const MAX = 32 * 1024;
const parse = (s: string | Buffer, max = MAX) => parseRequestHead(typeof s === 'string' ? Buffer.from(s, 'latin1') : s, max);

function accepted(r: ReturnType<typeof parse>): RequestHead {
  if (typeof r === 'string') throw new Error(`expected a head, got ${r}`);
  return r;
}

t.test('a plain head: method, target, headers as sent, its length, no body', async (t) => {
  const text = 'GET /a/b?c=d HTTP/1.1\r\nHost: app.example.com\r\nAccept: */*\r\nX-Empty:\r\nX-Pad: \t v \t\r\n\r\n';
  const h = accepted(parse(text + 'GET /next HTTP/1.1\r\n'));
  t.equal(h.method, 'GET');
  t.equal(h.url, '/a/b?c=d');
  t.same(h.rawHeaders, ['Host', 'app.example.com', 'Accept', '*/*', 'X-Empty', '', 'X-Pad', 'v']);
  t.same(h.headers, { host: 'app.example.com', accept: '*/*', 'x-empty': '', 'x-pad': 'v' });
  t.equal(h.length, Buffer.byteLength(text), 'the head ends at its blank line; a pipelined request stays unread');
  t.equal(h.contentLength, 0);
  t.equal(h.close, false);
});

t.test('Content-Length, Connection: close, repeated fields joined as node joins them', async (t) => {
  const h = accepted(
    parse('POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0012\r\nConnection: keep-alive, Close\r\nCookie: a=1\r\nCookie: b=2\r\nAccept: x\r\naccept: y\r\nUser-Agent: one\r\nUser-Agent: two\r\n\r\n'),
  );
  t.equal(h.contentLength, 12);
  t.equal(h.close, true);
  t.equal(h.headers.cookie, 'a=1; b=2');
  t.equal(h.headers.accept, 'x, y');
  t.equal(h.headers['user-agent'], 'one', 'single-valued fields keep the first');
  t.equal(accepted(parse('GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n')).close, false, '"closed" is not the close token');
  const named = accepted(parse('GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n\r\n'));
  t.equal(named.close, true, 'close beside a named field');
  t.equal(named.forward, null, 'a named field: the general forward rules');
  const usual = accepted(parse('GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive\r\nAccept: x\r\n\r\n'));
  t.equal(usual.close, false);
  t.equal(usual.forward, 'Accept: x\r\n', 'keep-alive: the lines pass, Connection cut out');
});

t.test('every proper prefix of a head is incomplete', async (t) => {
  const text = 'PUT /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n';
  for (let k = 0; k < text.length; k++) t.equal(parse(text.slice(0, k)), 'incomplete', `prefix of ${k} bytes`);
  t.equal(accepted(parse(text)).length, text.length);
});

t.test('everything the parser will not vouch for is deferred to node:http', async (t) => {
  const cases: Record<string, string> = {
    'HTTP/1.0': 'GET / HTTP/1.0\r\nHost: a\r\n\r\n',
    'absolute-form target': 'GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n',
    'asterisk target': 'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n',
    CONNECT: 'CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n',
    'bare LF line ends': 'GET / HTTP/1.1\nHost: a\n\n',
    'bare LF after a header': 'GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n',
    'CR inside a value': 'GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n',
    'NUL inside a value': 'GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n',
    'obs-fold': 'GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n  z\r\n\r\n',
    'space before the colon': 'GET / HTTP/1.1\r\nHost : a\r\n\r\n',
    'empty field name': 'GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n',
    'no Host': 'GET / HTTP/1.1\r\nAccept: a\r\n\r\n',
    'two Hosts': 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
    'Transfer-Encoding: chunked': 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n',
    'Transfer-Encoding and Content-Length': 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
    'two Content-Lengths': 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n',
    'signed Content-Length': 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n',
    'list Content-Length': 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n',
    'empty Content-Length': 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n',
    'huge Content-Length': 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456\r\n\r\n',
    Upgrade: 'GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
    Expect: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n',
    'a method with a slash': 'GE/T / HTTP/1.1\r\nHost: a\r\n\r\n',
    'a method node does not know': 'BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n',
    'two spaces after the method': 'GET  / HTTP/1.1\r\nHost: a\r\n\r\n',
    'a control character in the target': 'GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n',
    'a lower-case version': 'GET / http/1.1\r\nHost: a\r\n\r\n',
    'text after the version': 'GET / HTTP/1.1 x\r\nHost: a\r\n\r\n',
  };
  for (const [name, text] of Object.entries(cases)) t.equal(parse(text), 'defer', name);
});

t.test('a head that does not end within the limit is deferred (node answers 431)', async (t) => {
  const big = `GET / HTTP/1.1\r\nHost: a\r\nX: ${'v'.repeat(2000)}\r\n\r\n`;
  t.equal(parse(big, 1024), 'defer');
  t.equal(parse(big.slice(0, 1024), 1024), 'defer', 'the limit reached mid-value');
  t.equal(parse(big.slice(0, 1023), 1024), 'incomplete', 'one byte short of the limit');
  t.ok(typeof parse(big, 4096) === 'object', 'under a larger limit it is fine');
});

t.test('random bytes: never throws; a head it accepts ends in a blank line at its length', async () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.constantFrom('', 'GET / HTTP/1.1\r\nHost: a\r\n'), (bytes, prefix) => {
      const buf = Buffer.concat([Buffer.from(prefix, 'latin1'), Buffer.from(bytes)]);
      const r = parseRequestHead(buf, 256);
      if (typeof r === 'string') return r === 'incomplete' || r === 'defer';
      return r.length <= buf.length && buf.toString('latin1', r.length - 4, r.length) === '\r\n\r\n';
    }),
    { numRuns: 2000 },
  );
});

/** What node:http makes of a request: method, url, raw headers, and whether it got a 400. */
async function nodeReading(raw: Buffer): Promise<{ status: number; method?: string; url?: string; rawHeaders?: string[]; body?: string }> {
  let seen: { method?: string; url?: string; rawHeaders?: string[]; body?: string } = {};
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      seen = { method: req.method, url: req.url, rawHeaders: req.rawHeaders, body: Buffer.concat(parts).toString('latin1') };
      res.setHeader('Connection', 'close');
      res.end('ok');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const sock = net.connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  sock.on('data', (c: Buffer) => chunks.push(c));
  sock.end(raw);
  await once(sock, 'close');
  server.close();
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(Buffer.concat(chunks).toString('latin1'))?.[1] ?? 0);
  return { status, ...seen };
}

t.test('whatever the parser accepts, node:http reads the same way: same request, same head end, same body', async (t) => {
  const samples = [
    'GET /a HTTP/1.1\r\nHost: a\r\n\r\n',
    'POST /b?x=1 HTTP/1.1\r\nHost: b\r\nContent-Length: 5\r\n\r\nhello',
    'PATCH /c HTTP/1.1\r\nhOsT: c\r\ncontent-length: 000\r\nX-Odd: a"b\'c;d=e\r\n\r\n',
    'DELETE /d HTTP/1.1\r\nHost: d\r\nX-High: \xe9t\xe9\r\nConnection: close\r\n\r\n',
    'GET /e HTTP/1.1\r\nHost: e\r\nX-Tabs:\tv\t\r\n\r\n',
    'M-SEARCH /f HTTP/1.1\r\nHost: f\r\n\r\n',
  ];
  for (const text of samples) {
    const buf = Buffer.from(text, 'latin1');
    const ours = accepted(parseRequestHead(buf, MAX));
    const node = await nodeReading(buf);
    t.equal(node.status, 200, `node accepts ${JSON.stringify(text.slice(0, 20))}`);
    t.equal(node.method, ours.method);
    t.equal(node.url, ours.url);
    t.same(node.rawHeaders, ours.rawHeaders);
    t.equal(node.body, buf.toString('latin1', ours.length, ours.length + ours.contentLength), 'the body is where both say it is');
  }
});
