/** The demo web app `portico demo` publishes: a page, JSON, SSE and a WebSocket echo. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

const PAGE = `<!doctype html><meta charset="utf-8"><title>Portico demo</title>
<h1>Portico demo app</h1>
<p>This page is served by an app inside the "container", reached through the Portico tunnel.</p>
<ul><li><a href="/api/hello">/api/hello</a> (JSON)</li><li><a href="/events">/events</a> (server-sent events)</li><li>/ws (WebSocket echo)</li></ul>
<pre id="log"></pre>
<script>
const log = (t) => (document.getElementById('log').textContent += t + '\\n');
const es = new EventSource('/events'); es.onmessage = (e) => log('sse: ' + e.data);
const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
ws.onopen = () => ws.send('hello over websocket'); ws.onmessage = (e) => log('ws echo: ' + e.data);
</script>`;

export interface DemoApp {
  port: number;
  close(): Promise<void>;
}

export async function startDemoApp(host: string, preferredPort: number): Promise<DemoApp> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
    } else if (url.pathname === '/api/hello') {
      const body = JSON.stringify({ hello: 'from the demo app', path: url.pathname, forwarded_for: req.headers['x-forwarded-for'] ?? null, time: new Date().toISOString() });
      res.writeHead(200, { 'content-type': 'application/json' }).end(body + '\n');
    } else if (url.pathname === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      let n = 0;
      const t = setInterval(() => {
        n++;
        res.write(`data: tick ${n} ${new Date().toISOString()}\n\n`);
        if (n >= 10) {
          clearInterval(t);
          res.end();
        }
      }, 1000);
      req.once('close', () => clearInterval(t));
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  const wss = new WebSocketServer({ server, path: '/ws' });
  wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve((server.address() as AddressInfo).port);
      });
    });
  let port: number;
  try {
    port = await listen(preferredPort);
  } catch {
    port = await listen(0);
  }
  return {
    port,
    close: () =>
      new Promise<void>((res) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        server.closeAllConnections();
        server.close(() => res());
      }),
  };
}
