import t from 'tap';
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
