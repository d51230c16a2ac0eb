/** The plain-HTTP listener: every request is sent to the same URL over HTTPS. */
import http from 'node:http';
import type { RelayConfig } from '../../shared/config/types.js';
import { normalizeHost } from './router.js';

/** Request handler answering 301 (GET/HEAD) or 308 (others, method and body kept) to https://. */
export function redirectHandler(config: RelayConfig): http.RequestListener {
  const port = config.https.listen.port;
  const suffix = port === 443 ? '' : `:${port}`;
  return (req, res) => {
    const host = normalizeHost(req.headers.host);
    if (!/^[a-z0-9.-]+$/.test(host)) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' }).end('a Host header is required\n');
      return;
    }
    const url = req.url?.startsWith('/') ? req.url : '/';
    const location = `https://${host}${suffix}${url}`;
    const status = req.method === 'GET' || req.method === 'HEAD' ? 301 : 308;
    const body = `moved to ${location}\n`;
    res.writeHead(status, { location, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
}
