// jspipe — a measurement, not a product part: sealpipe.c's design (larger
// AES-128-GCM units than TLS records over plain TCP, fixed key, no
// handshake) written in JavaScript with node:crypto, to learn whether the
// proposed data path needs native code. Units are what one event-loop turn
// read (up to MAXUNIT); the receiver releases a unit's plaintext only after
// its tag verified. Listens on 127.0.0.1; dials NEXT_HOST (use 127.x).
//
//   node jspipe.mjs front|back LISTEN_PORT NEXT_HOST NEXT_PORT MAXUNIT
//
// Measured beside the others in docs/benchmarks.md ("Where the time goes").
import net from 'node:net';
import crypto from 'node:crypto';

const [mode, listen, nextHost, nextPort, maxUnitS] = process.argv.slice(2);
const MAX = Number(maxUnitS);
const KEY = Buffer.from('sealpipe-key-123');
const TAG = 16;

function nonce(dir, n) {
  const iv = Buffer.alloc(12);
  iv.writeUInt32LE(dir, 0);
  iv.writeBigUInt64LE(BigInt(n), 4);
  return iv;
}

/** plain socket -> sealed socket */
function sealer(src, dst, dir) {
  let chunks = [];
  let len = 0;
  let n = 0;
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    while (len > 0) {
      let take = 0, size = 0;
      while (take < chunks.length && size + chunks[take].length <= MAX) size += chunks[take++].length;
      if (take === 0) { // a chunk larger than MAX: split
        const c = chunks[0];
        chunks[0] = c.subarray(MAX);
        chunks.unshift(c.subarray(0, MAX));
        continue;
      }
      const part = chunks.splice(0, take);
      len -= size;
      const hdr = Buffer.allocUnsafe(4);
      hdr.writeUInt32BE(size, 0);
      const c = crypto.createCipheriv('aes-128-gcm', KEY, nonce(dir, n++));
      c.setAAD(hdr);
      dst.cork();
      dst.write(hdr);
      for (const p of part) dst.write(c.update(p));
      c.final();
      dst.write(c.getAuthTag());
      dst.uncork();
    }
    if (dst.writableNeedDrain) { src.pause(); dst.once('drain', () => src.resume()); }
  };
  src.on('data', (d) => {
    chunks.push(d);
    len += d.length;
    if (!scheduled) { scheduled = true; setImmediate(flush); }
  });
  src.on('end', () => { flush(); const z = Buffer.alloc(4); dst.end(z); });
}

/** sealed socket -> plain socket */
function opener(src, dst, dir) {
  let pending = [];
  let plen = 0;
  let need = 4, hdr = null, d = null, out = [], got = 0, n = 0;
  const take = (k) => {
    // returns a list of buffers totalling k bytes from pending
    const parts = [];
    while (k > 0) {
      const b = pending[0];
      if (b.length <= k) { parts.push(b); pending.shift(); k -= b.length; plen -= b.length; }
      else { parts.push(b.subarray(0, k)); pending[0] = b.subarray(k); plen -= k; k = 0; }
    }
    return parts;
  };
  src.on('data', (chunk) => {
    pending.push(chunk); plen += chunk.length;
    for (;;) {
      if (!hdr) {
        if (plen < 4) return;
        hdr = Buffer.concat(take(4));
        const l = hdr.readUInt32BE(0);
        if (l === 0) { dst.end(); return; }
        need = l; got = 0; out = [];
        d = crypto.createDecipheriv('aes-128-gcm', KEY, nonce(dir, n++));
        d.setAAD(hdr);
      }
      if (need > 0) {
        if (plen === 0) return;
        const k = Math.min(need, plen);
        for (const p of take(k)) out.push(d.update(p));
        need -= k;
        if (need > 0) return;
      }
      if (plen < TAG) return;
      d.setAuthTag(Buffer.concat(take(TAG)));
      d.final();
      dst.cork();
      for (const o of out) dst.write(o);
      dst.uncork();
      hdr = null;
      if (dst.writableNeedDrain) { src.pause(); dst.once('drain', () => src.resume()); }
    }
  });
}

const server = net.createServer({ allowHalfOpen: true }, (c) => {
  c.setNoDelay(true);
  const o = net.connect({ port: Number(nextPort), host: nextHost, allowHalfOpen: true });
  o.setNoDelay(true);
  if (mode === 'front') { sealer(c, o, 1); opener(o, c, 2); }
  else { opener(c, o, 1); sealer(o, c, 2); }
  const bye = () => { c.destroy(); o.destroy(); };
  c.on('error', bye); o.on('error', bye);
});
server.listen(Number(listen), '127.0.0.1');
