import t from 'tap';
import { DURATION_BUCKETS, countUnroutedRequest, observeDuration, scrape, setCollectors, statusClass, type MappingSeries } from '../../relay/metrics.js';

t.test('the per-mapping HTTP series become Prometheus samples at scrape time', async (t) => {
  const s: MappingSeries & { durationCounts: number[] } = {
    serverId: 'gpu-1',
    mappingId: 'm-1',
    classCounts: [0, 3, 0, 1, 0],
    promBytesIn: 10,
    promBytesOut: 0,
    durationCounts: new Array<number>(DURATION_BUCKETS.length + 1).fill(0),
    durationSum: 0,
  };
  // 0.005 s sits in the le="0.005" bucket (le is inclusive); 0.0051 in the next; 31 s only in +Inf.
  for (const sec of [0.001, 0.005, 0.0051, 31]) observeDuration(s.durationCounts, sec);
  (s as { durationSum: number }).durationSum = 0.001 + 0.005 + 0.0051 + 31;
  countUnroutedRequest(404);
  setCollectors({ agentsOnline: () => 0, streamsOpen: () => 0, mappingSeries: () => [s] });
  t.teardown(() => setCollectors(null));
  const text = await scrape();
  const line = (re: RegExp) => text.split('\n').find((l) => re.test(l));
  t.match(line(/^portico_http_requests_total\{[^}]*mapping="m-1"[^}]*status_class="2xx"/), / 3$/);
  t.match(line(/^portico_http_requests_total\{[^}]*mapping="m-1"[^}]*status_class="4xx"/), / 1$/);
  t.notOk(line(/^portico_http_requests_total\{[^}]*mapping="m-1"[^}]*status_class="5xx"/), 'no sample for a class never seen');
  t.match(line(/^portico_http_requests_total\{[^}]*mapping=""[^}]*status_class="4xx"/), / 1$/, 'an unrouted 404');
  t.match(line(/^portico_bytes_total\{[^}]*mapping="m-1"[^}]*direction="in"/), / 10$/);
  t.match(line(/^portico_http_request_duration_seconds_bucket\{[^}]*le="0.005"/), / 2$/);
  t.match(line(/^portico_http_request_duration_seconds_bucket\{[^}]*le="0.01"/), / 3$/, 'cumulative');
  t.match(line(/^portico_http_request_duration_seconds_bucket\{[^}]*le="30"/), / 3$/);
  t.match(line(/^portico_http_request_duration_seconds_bucket\{[^}]*le="\+Inf"/), / 4$/);
  t.match(line(/^portico_http_request_duration_seconds_count\{/), / 4$/);
  t.match(text, /# TYPE portico_http_request_duration_seconds histogram/);
  t.equal(statusClass(101), 0);
  t.equal(statusClass(599), 4);
  t.equal(statusClass(999), 4, 'odd codes clamp');
});
