// Agent token format, parsing and constant-time verification (relay/auth/tokens.ts).
import t from 'tap';
import { createHash } from 'node:crypto';
import { base32Encode, hashSecret, makeAgentToken, parseAgentToken, randomBase32, verifySecret } from '../../relay/auth/tokens.js';

t.test('base32 encodes RFC 4648 vectors in lowercase without padding', async (t) => {
  const vectors: Array<[string, string]> = [
    ['', ''],
    ['f', 'my'],
    ['fo', 'mzxq'],
    ['foo', 'mzxw6'],
    ['foob', 'mzxw6yq'],
    ['fooba', 'mzxw6ytb'],
    ['foobar', 'mzxw6ytboi'],
  ];
  for (const [input, want] of vectors) t.equal(base32Encode(Buffer.from(input)), want, JSON.stringify(input));
});

t.test('randomBase32 gives the asked length from the base32 alphabet', async (t) => {
  for (const n of [1, 8, 32, 33]) t.match(randomBase32(n), new RegExp(`^[a-z2-7]{${n}}$`));
  t.not(randomBase32(32), randomBase32(32));
});

t.test('makeAgentToken: ptk_<id>_<32 base32 chars>, hash of the secret only', async (t) => {
  const { token, secret, tokenHash } = makeAgentToken('gpu-7');
  t.match(token, /^ptk_gpu-7_[a-z2-7]{32}$/);
  t.equal(token, `ptk_gpu-7_${secret}`);
  t.equal(tokenHash, createHash('sha256').update(secret).digest('hex'));
  t.equal(tokenHash, hashSecret(secret));
  t.notOk(tokenHash.includes(secret));
  // 32 chars x 5 bits = 160 bits; two tokens never repeat
  const seen = new Set(Array.from({ length: 200 }, () => makeAgentToken('a').secret));
  t.equal(seen.size, 200);
});

t.test('makeAgentToken refuses ids that are not DNS labels', async (t) => {
  for (const bad of ['', 'A', 'a_b', '-a', 'a-', 'x'.repeat(64)]) t.throws(() => makeAgentToken(bad), TypeError, JSON.stringify(bad));
  t.doesNotThrow(() => makeAgentToken('x'.repeat(63)));
});

t.test('parseAgentToken round-trips and rejects malformed tokens', async (t) => {
  const { token, secret } = makeAgentToken('srv-abc12345');
  t.same(parseAgentToken(token), { serverId: 'srv-abc12345', secret });
  const s = 'a'.repeat(32);
  for (const bad of [
    '',
    'ptk_',
    `ptk__${s}`,
    `ptk_srv_${s.slice(1)}`, // secret too short
    `ptk_srv_${s}a`, // too long
    `ptk_srv_${s.slice(1)}1`, // '1' is not base32
    `ptk_SRV_${s}`, // uppercase id
    `pak_srv_${s}`, // API key prefix
    `ptk_srv-_${s}`,
    `ptk_a_b_${s}`, // '_' cannot be in an id
    `srv_${s}`,
  ]) {
    t.equal(parseAgentToken(bad), null, JSON.stringify(bad));
  }
  t.equal(parseAgentToken(undefined as unknown as string), null);
  t.same(parseAgentToken(`ptk_x_${s}`), { serverId: 'x', secret: s });
});

t.test('verifySecret accepts the right secret only, in constant time', async (t) => {
  const { secret, tokenHash } = makeAgentToken('s1');
  t.ok(verifySecret(secret, tokenHash));
  t.notOk(verifySecret(secret.slice(0, -1) + (secret.endsWith('a') ? 'b' : 'a'), tokenHash));
  t.notOk(verifySecret('', tokenHash));
  t.notOk(verifySecret(secret, 'not-hex'));
  t.notOk(verifySecret(secret, ''));
  t.notOk(verifySecret(secret, tokenHash.toUpperCase().slice(2)));
});
