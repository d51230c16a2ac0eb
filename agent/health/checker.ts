/**
 * Health checks inside the container: for every mapping whose health_check
 * is enabled, an HTTP GET of `path` on local_host:internal_port expecting
 * `expected_status` (or a TCP connect when path is empty), every
 * `interval_seconds`, each attempt bounded by `timeout_seconds`. A mapping is
 * `unhealthy` once `retries` checks in a row failed (Docker's meaning;
 * retries 0 counts as 1) and `healthy` after one success. Results go to the
 * relay in a HealthReport at once when a state changes, and every few seconds
 * otherwise (so last_check stays fresh). One check in flight per mapping;
 * every timer is unref'd.
 */
import http from 'node:http';
import net from 'node:net';
import type { HealthStateMsg, MappingMsg } from '../../proto/index.js';

/** How often unchanged results are reported (at most). */
export const REPORT_EVERY_MS = 5_000;

export interface CheckSpec {
  mappingId: string;
  host: string;
  port: number;
  /** Empty = TCP connect. */
  path: string;
  intervalMs: number;
  timeoutMs: number;
  expectedStatus: number;
  retries: number;
}

export interface ProbeResult {
  ok: boolean;
  detail: string;
}

/** One check attempt. Never rejects. */
export function probe(spec: Pick<CheckSpec, 'host' | 'port' | 'path' | 'timeoutMs' | 'expectedStatus'>): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: ProbeResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const target = `${spec.host}:${spec.port}`;
    let cleanup = () => undefined as void;
    const timer = setTimeout(() => {
      cleanup();
      finish({ ok: false, detail: `no answer from ${target}${spec.path} within ${spec.timeoutMs} ms` });
    }, spec.timeoutMs);
    timer.unref();
    if (!spec.path) {
      const sock = net.connect({ host: spec.host, port: spec.port });
      cleanup = () => sock.destroy();
      sock.once('connect', () => {
        sock.destroy();
        finish({ ok: true, detail: `tcp connect to ${target} ok` });
      });
      sock.once('error', (err: NodeJS.ErrnoException) => finish({ ok: false, detail: `tcp connect to ${target}: ${err.code ?? err.message}` }));
      return;
    }
    const req = http.request({
      host: spec.host,
      port: spec.port,
      path: spec.path,
      method: 'GET',
      agent: false,
      headers: { 'user-agent': 'portico-health/1', connection: 'close', accept: '*/*' },
    });
    cleanup = () => req.destroy();
    req.once('response', (res) => {
      res.resume();
      res.once('error', () => undefined);
      req.destroy();
      const status = res.statusCode ?? 0;
      finish(
        status === spec.expectedStatus
          ? { ok: true, detail: `GET ${spec.path} -> ${status}` }
          : { ok: false, detail: `GET ${spec.path} -> ${status}, expected ${spec.expectedStatus}` },
      );
    });
    req.once('error', (err: NodeJS.ErrnoException) => finish({ ok: false, detail: `GET http://${target}${spec.path}: ${err.code ?? err.message}` }));
    req.end();
  });
}

/** The check of a mapping, if it has an enabled one. */
export function specOf(m: MappingMsg, localHost: string): CheckSpec | null {
  const hc = m.healthCheck;
  if (!hc || hc.enabled === false) return null;
  const interval = Math.max(1, hc.intervalSeconds || 30);
  return {
    mappingId: m.id,
    host: localHost,
    port: m.internalPort,
    path: hc.path ?? '',
    intervalMs: interval * 1000,
    timeoutMs: Math.max(1, Math.min(hc.timeoutSeconds || 10, interval)) * 1000,
    expectedStatus: hc.expectedStatus || 200,
    retries: Math.max(1, hc.retries ?? 3),
  };
}

interface Running {
  spec: CheckSpec;
  specKey: string;
  state: HealthStateMsg;
  timer: NodeJS.Timeout | null;
  stopped: boolean;
}

export class HealthChecker {
  private readonly running = new Map<string, Running>();
  private sender: ((states: HealthStateMsg[]) => void) | null = null;
  private reportTimer: NodeJS.Timeout | null = null;
  private dirty = false;

  constructor(private readonly probeFn: typeof probe = probe) {}

  /** Where reports go (the control channel of the current tunnel), or null while offline. Sends a full report when set. */
  setSender(send: ((states: HealthStateMsg[]) => void) | null): void {
    this.sender = send;
    if (send && this.running.size > 0) this.sendAll();
  }

  /** Starts, restarts (changed settings) and stops checks to match the forwarding table. */
  update(mappings: readonly MappingMsg[], localHost: string): void {
    const want = new Map<string, CheckSpec>();
    for (const m of mappings) {
      const s = specOf(m, localHost);
      if (s) want.set(m.id, s);
    }
    for (const [id, r] of this.running) {
      const s = want.get(id);
      if (!s || JSON.stringify(s) !== r.specKey) this.stopOne(id);
    }
    for (const [id, s] of want) if (!this.running.has(id)) this.startOne(s);
    if (this.running.size > 0 && !this.reportTimer) {
      this.reportTimer = setInterval(() => {
        if (this.dirty) this.sendAll();
      }, REPORT_EVERY_MS);
      this.reportTimer.unref();
    } else if (this.running.size === 0 && this.reportTimer) {
      clearInterval(this.reportTimer);
      this.reportTimer = null;
    }
  }

  /** Current state of every check. */
  snapshot(): HealthStateMsg[] {
    return [...this.running.values()].map((r) => ({ ...r.state }));
  }

  stop(): void {
    for (const id of [...this.running.keys()]) this.stopOne(id);
    if (this.reportTimer) clearInterval(this.reportTimer);
    this.reportTimer = null;
    this.sender = null;
  }

  private startOne(spec: CheckSpec): void {
    const r: Running = {
      spec,
      specKey: JSON.stringify(spec),
      state: { mappingId: spec.mappingId, status: 'unknown', lastCheckMs: 0, consecutiveFailures: 0, detail: 'no check yet' },
      timer: null,
      stopped: false,
    };
    this.running.set(spec.mappingId, r);
    this.dirty = true;
    void this.runOnce(r);
  }

  private stopOne(id: string): void {
    const r = this.running.get(id);
    if (!r) return;
    r.stopped = true;
    if (r.timer) clearTimeout(r.timer);
    this.running.delete(id);
  }

  private async runOnce(r: Running): Promise<void> {
    const result = await this.probeFn(r.spec);
    if (r.stopped) return;
    const before = r.state.status;
    const failures = result.ok ? 0 : (r.state.consecutiveFailures ?? 0) + 1;
    let status = before;
    if (result.ok) status = 'healthy';
    else if (failures >= r.spec.retries) status = 'unhealthy';
    r.state = { mappingId: r.spec.mappingId, status, lastCheckMs: Date.now(), consecutiveFailures: failures, detail: result.detail };
    this.dirty = true;
    if (status !== before) this.sendAll();
    r.timer = setTimeout(() => void this.runOnce(r), r.spec.intervalMs);
    r.timer.unref();
  }

  private sendAll(): void {
    if (!this.sender) return;
    this.dirty = false;
    try {
      this.sender(this.snapshot());
    } catch {
      this.dirty = true; // the channel closed under us; the next tunnel gets a full report
    }
  }
}
