import t from 'tap';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { atTurnEnd } from '../../shared/util/turn-end.js';

t.test('callbacks run once at the end of the turn, in order; one added while they run joins the same pass', async (t) => {
  const order: string[] = [];
  await new Promise<void>((done) => {
    atTurnEnd(() => {
      order.push('a');
      // Scheduled before b is registered: it runs in the next turn, after b.
      setImmediate(() => {
        order.push('next turn');
        done();
      });
      atTurnEnd(() => order.push('b'));
    });
    atTurnEnd(() => order.push('c'));
    order.push('sync');
  });
  t.same(order, ['sync', 'a', 'c', 'b', 'next turn']);
});

t.test('a later turn gets a fresh pass', async (t) => {
  let runs = 0;
  for (let i = 0; i < 3; i++) {
    await new Promise<void>((done) =>
      atTurnEnd(() => {
        runs++;
        done();
      }),
    );
  }
  t.equal(runs, 3);
});

t.test('a callback that throws does not take the ones after it down', async (t) => {
  // In a child process: the throw is an uncaught exception there, reported and survived.
  const mod = fileURLToPath(new URL('../../shared/util/turn-end.js', import.meta.url));
  const script = `
    const { atTurnEnd } = await import(${JSON.stringify(mod)});
    const seen = [];
    process.on('uncaughtException', (e) => seen.push('caught ' + e.message));
    atTurnEnd(() => seen.push('a'));
    atTurnEnd(() => { throw new Error('boom'); });
    atTurnEnd(() => seen.push('after'));
    setTimeout(() => {
      atTurnEnd(() => { seen.push('next'); console.log(JSON.stringify(seen)); });
    }, 20);`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
  t.same(JSON.parse(out), ['a', 'caught boom', 'after', 'next']);
});
