// napi-pipe — sealpipe's topology with Node processes that accept and dial
// the sockets themselves and hand them to napi-pump.c's native loop (a
// measurement of docs/native-data-path.md's proposal, not a product part).
//
//   NAPI_PUMP=/path/napi_pump.node node napi-pipe.mjs front|back LISTEN_PORT NEXT_HOST NEXT_PORT UNIT
//
// Listens on 127.0.0.1; dials NEXT_HOST (use 127.x). Sockets are never read
// by Node (pauseOnConnect, pause() before the first read), so the native
// threads own their bytes; Node closes them when the pump reports done.
import net from 'node:net';
import { createRequire } from 'node:module';

const native = createRequire(import.meta.url)(process.env.NAPI_PUMP ?? './napi_pump.node');
const [mode, listen, nextHost, nextPort, unit] = process.argv.slice(2);
const [sealDir, openDir] = mode === 'front' ? [1, 2] : [2, 1];

const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (c) => {
  c.setNoDelay(true);
  const o = net.connect({ host: nextHost, port: Number(nextPort), allowHalfOpen: true });
  const bye = () => {
    c.destroy();
    o.destroy();
  };
  c.on('error', bye);
  o.on('error', bye);
  o.once('connect', () => {
    o.pause(); // before Node's first read(0)
    o.setNoDelay(true);
    const [plain, sealed] = mode === 'front' ? [c, o] : [o, c];
    native.pump(plain._handle.fd, sealed._handle.fd, sealDir, openDir, Number(unit), (up, down, failed) => {
      if (failed) process.stderr.write(`napi-pipe ${mode}: a unit failed (${up} / ${down} bytes)\n`);
      bye();
    });
  });
});
server.listen(Number(listen), '127.0.0.1');
