import t from 'tap';

import {
  ConfigValueError,
  deepFreeze,
  formatHostPort,
  parseBoolean,
  parseDuration,
  parseHost,
  parseHostPort,
  parseInteger,
  parseLogLevel,
  parsePort,
  parsePortList,
  parsePortRange,
  parseSize,
} from '../../shared/config/values.js';

t.test('durations', async (t) => {
  t.equal(parseDuration('500ms'), 500);
  t.equal(parseDuration('60s'), 60_000);
  t.equal(parseDuration('10m'), 600_000);
  t.equal(parseDuration('1h'), 3_600_000);
  t.equal(parseDuration('1.5s'), 1500);
  t.equal(parseDuration('1h30m'), 5_400_000);
  t.equal(parseDuration(' 0s '), 0);
  t.throws(() => parseDuration(60), { message: /no unit/ }, 'a YAML number needs a unit');
  t.throws(() => parseDuration('60'), { message: /no unit.*"60s"/ }, 'a bare string number needs a unit');
  for (const bad of ['', '10 minutes', '5d', '-1s', 's', '1.s', true, null]) {
    t.throws(() => parseDuration(bad), ConfigValueError, `refuses ${JSON.stringify(bad)}`);
  }
});

t.test('sizes', async (t) => {
  t.equal(parseSize(262144), 262144);
  t.equal(parseSize('262144'), 262144);
  t.equal(parseSize('256KiB'), 256 * 1024);
  t.equal(parseSize('4MiB'), 4 * 1024 * 1024);
  t.equal(parseSize('1GiB'), 1024 ** 3);
  t.equal(parseSize('4mib'), 4 * 1024 * 1024, 'units are case-insensitive');
  t.equal(parseSize('500KB'), 500_000);
  t.equal(parseSize('1.5KiB'), 1536);
  t.equal(parseSize('10B'), 10);
  for (const bad of ['4 megs', '4XB', '-1', 1.5, '0.3B', 'MiB', {}]) {
    t.throws(() => parseSize(bad), ConfigValueError, `refuses ${JSON.stringify(bad)}`);
  }
});

t.test('integers, ports, booleans, log levels', async (t) => {
  t.equal(parseInteger('42'), 42);
  t.equal(parseInteger(10, { min: 10, max: 40 }), 10);
  t.throws(() => parseInteger(9, { min: 10, max: 40 }), { message: /10\.\.40/ });
  t.throws(() => parseInteger(2.5), ConfigValueError);
  t.throws(() => parseInteger('ten'), ConfigValueError);
  t.equal(parsePort(1), 1);
  t.equal(parsePort('65535'), 65535);
  t.throws(() => parsePort(0), { message: /1\.\.65535/ });
  t.equal(parsePort(0, { allowZero: true }), 0);
  t.throws(() => parsePort(65536), ConfigValueError);
  t.equal(parseBoolean(true), true);
  t.equal(parseBoolean('no'), false);
  t.throws(() => parseBoolean('maybe'), ConfigValueError);
  t.equal(parseLogLevel('DEBUG'), 'debug');
  t.throws(() => parseLogLevel('loud'), { message: /trace, debug, info/ });
});

t.test('host:port', async (t) => {
  t.same(parseHostPort('127.0.0.1:7000'), { host: '127.0.0.1', port: 7000 });
  t.same(parseHostPort('0.0.0.0:443'), { host: '0.0.0.0', port: 443 });
  t.same(parseHostPort('[::1]:7000'), { host: '::1', port: 7000 });
  t.same(parseHostPort('[::]:80'), { host: '::', port: 80 });
  t.same(parseHostPort('connect01.example.com:7000'), { host: 'connect01.example.com', port: 7000 });
  t.same(parseHostPort('localhost:8443'), { host: 'localhost', port: 8443 });
  t.same(parseHostPort('relay.example.com', { defaultPort: 7000 }), { host: 'relay.example.com', port: 7000 });
  t.same(parseHostPort('[fe80::1]', { defaultPort: 7000 }), { host: 'fe80::1', port: 7000 });
  t.same(parseHostPort('127.0.0.1:0', { allowZero: true }), { host: '127.0.0.1', port: 0 });
  t.throws(() => parseHostPort('localhost'), { message: /no port/ });
  t.throws(() => parseHostPort('::1:7000'), { message: /brackets/ });
  t.throws(() => parseHostPort('[::1]'), { message: /no port/ });
  t.throws(() => parseHostPort('[nothex]:1'), ConfigValueError);
  t.throws(() => parseHostPort('127.0.0.1:99999'), { message: /out of range/ });
  t.throws(() => parseHostPort('127.0.0.1:0'), ConfigValueError, 'port 0 only when allowed');
  t.throws(() => parseHostPort('127.0.0.1:http'), { message: /bad port/ });
  t.throws(() => parseHostPort('https://x.com:1'), ConfigValueError);
  t.throws(() => parseHostPort('bad_host!:1'), ConfigValueError);
  t.throws(() => parseHostPort(7000), ConfigValueError);
  t.equal(formatHostPort({ host: '::1', port: 7000 }), '[::1]:7000');
  t.equal(formatHostPort({ host: '10.0.0.1', port: 1 }), '10.0.0.1:1');
  t.equal(parseHost('[::1]'), '::1');
  t.equal(parseHost('gpu-7.internal'), 'gpu-7.internal');
  t.throws(() => parseHost('a b'), ConfigValueError);
});

t.test('port ranges and lists', async (t) => {
  t.same(parsePortRange('20000-39999'), { start: 20000, end: 39999 });
  t.same(parsePortRange('20000 - 20010'), { start: 20000, end: 20010 });
  t.same(parsePortRange('7000'), { start: 7000, end: 7000 });
  t.same(parsePortRange(7000), { start: 7000, end: 7000 });
  t.throws(() => parsePortRange('30000-20000'), { message: /starts after it ends/ });
  t.throws(() => parsePortRange('0-100'), { message: /1\.\.65535/ });
  t.throws(() => parsePortRange('60000-70000'), { message: /1\.\.65535/ });
  t.throws(() => parsePortRange('a-b'), ConfigValueError);
  t.throws(() => parsePortRange('1-2-3'), ConfigValueError);
  t.same(parsePortList([443, 22, '6000-6002', 22]), [22, 443, 6000, 6001, 6002]);
  t.same(parsePortList([]), []);
  t.throws(() => parsePortList([22, 70000]), { message: /item 1/ });
  t.throws(() => parsePortList(22), ConfigValueError);
});

t.test('deepFreeze', async (t) => {
  const o = deepFreeze({ a: { b: [1, { c: 2 }] } });
  t.ok(Object.isFrozen(o.a.b));
  t.ok(Object.isFrozen(o.a.b[1]));
});
