/**
 * The Store on an embedded SQLite file (better-sqlite3): WAL journal, foreign
 * keys on, schema from ./migrations.ts. Calls are synchronous underneath and
 * wrapped in promises to fit the Store interface. Uniqueness rules are checked
 * inside the write transaction first, so conflicts come back as PorticoErrors
 * with useful details; the unique indexes stay as the last line of defence.
 */
import BetterSqlite3 from 'better-sqlite3';
import type { Database } from 'better-sqlite3';

import { PorticoError, isPorticoError } from '../../shared/errors.js';
import { migrate } from './migrations.js';
import type {
  AccessLogEntry,
  MappingStatsRecord,
  ApiKeyRecord,
  MappingPatch,
  MappingRecord,
  NewMapping,
  NewServer,
  ServerPatch,
  ServerRecord,
  Store,
  NewUser,
  UserKeyRecord,
  UserRecord,
} from './store.js';

interface ServerRow {
  id: string;
  owner: string;
  ports: string;
  udp: number;
  token_hash: string;
  proxy_enabled: number;
  allowed_ips: string;
  access: string | null;
  created_at: string;
  updated_at: string;
}

interface MappingRow {
  id: string;
  server_id: string;
  internal_port: number;
  external_port: number;
  protocol: 'tcp' | 'udp';
  description: string;
  name: string | null;
  http: number;
  https_token: string | null;
  source: 'api' | 'agent';
  health_check: string | null;
  access_control: string | null;
  replica_group: string | null;
  created_at: string;
  updated_at: string;
}

interface ApiKeyRow {
  id: string;
  owner: string | null;
  key_hash: string;
  created_at: string;
}

const json = (v: unknown): string | null => (v === null || v === undefined ? null : JSON.stringify(v));
const parseJson = <T>(s: string | null): T | null => (s === null ? null : (JSON.parse(s) as T));

function serverFromRow(r: ServerRow): ServerRecord {
  return {
    id: r.id,
    owner: r.owner,
    ports: JSON.parse(r.ports) as number[],
    udp: r.udp === 1,
    tokenHash: r.token_hash,
    proxyEnabled: r.proxy_enabled === 1,
    allowedIps: JSON.parse(r.allowed_ips) as string[],
    access: parseJson<Record<string, unknown>>(r.access),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function serverToRow(s: ServerRecord): ServerRow {
  return {
    id: s.id,
    owner: s.owner,
    ports: JSON.stringify([...s.ports].sort((a, b) => a - b)),
    udp: s.udp ? 1 : 0,
    token_hash: s.tokenHash,
    proxy_enabled: s.proxyEnabled ? 1 : 0,
    allowed_ips: JSON.stringify(s.allowedIps),
    access: json(s.access),
    created_at: s.createdAt,
    updated_at: s.updatedAt,
  };
}

function mappingFromRow(r: MappingRow): MappingRecord {
  return {
    id: r.id,
    serverId: r.server_id,
    internalPort: r.internal_port,
    externalPort: r.external_port,
    protocol: r.protocol,
    description: r.description,
    name: r.name,
    http: r.http === 1,
    httpsToken: r.https_token,
    source: r.source,
    healthCheck: parseJson<Record<string, unknown>>(r.health_check),
    accessControl: parseJson<Record<string, unknown>>(r.access_control),
    group: r.replica_group ?? null,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function mappingToRow(m: MappingRecord): MappingRow {
  return {
    id: m.id,
    server_id: m.serverId,
    internal_port: m.internalPort,
    external_port: m.externalPort,
    protocol: m.protocol,
    description: m.description,
    name: m.name,
    http: m.http ? 1 : 0,
    https_token: m.httpsToken,
    source: m.source,
    health_check: json(m.healthCheck),
    access_control: json(m.accessControl),
    replica_group: m.group ?? null,
    created_at: m.createdAt,
    updated_at: m.updatedAt,
  };
}

function apiKeyFromRow(r: ApiKeyRow): ApiKeyRecord {
  return { id: r.id, owner: r.owner, keyHash: r.key_hash, createdAt: r.created_at };
}

/** Strictly later than `prev` so updatedAt always moves, even within one millisecond. */
function nowAfter(prev?: string): string {
  const now = new Date();
  if (prev !== undefined) {
    const p = Date.parse(prev);
    if (!Number.isNaN(p) && now.getTime() <= p) return new Date(p + 1).toISOString();
  }
  return now.toISOString();
}

function sqliteCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

const SERVER_COLS = 'id, owner, ports, udp, token_hash, proxy_enabled, allowed_ips, access, created_at, updated_at';
const MAPPING_COLS =
  'id, server_id, internal_port, external_port, protocol, description, name, http, https_token, source, health_check, access_control, replica_group, created_at, updated_at';

/** Every statement the store runs, prepared once. */
function prepareStatements(db: Database) {
  return {
    insertServer: db.prepare(
      `INSERT INTO servers (${SERVER_COLS}) VALUES (@id, @owner, @ports, @udp, @token_hash, @proxy_enabled, @allowed_ips, @access, @created_at, @updated_at)`,
    ),
    getServer: db.prepare(`SELECT ${SERVER_COLS} FROM servers WHERE id = ?`),
    listServers: db.prepare(`SELECT ${SERVER_COLS} FROM servers ORDER BY created_at, rowid`),
    listServersByOwner: db.prepare(`SELECT ${SERVER_COLS} FROM servers WHERE owner = ? ORDER BY created_at, rowid`),
    updateServer: db.prepare(
      `UPDATE servers SET owner = @owner, ports = @ports, udp = @udp, token_hash = @token_hash, proxy_enabled = @proxy_enabled,
         allowed_ips = @allowed_ips, access = @access, updated_at = @updated_at WHERE id = @id`,
    ),
    deleteServer: db.prepare('DELETE FROM servers WHERE id = ?'),

    insertMapping: db.prepare(
      `INSERT INTO mappings (${MAPPING_COLS}) VALUES (@id, @server_id, @internal_port, @external_port, @protocol, @description, @name,
         @http, @https_token, @source, @health_check, @access_control, @replica_group, @created_at, @updated_at)`,
    ),
    getMapping: db.prepare(`SELECT ${MAPPING_COLS} FROM mappings WHERE server_id = ? AND id = ?`),
    getMappingById: db.prepare(`SELECT ${MAPPING_COLS} FROM mappings WHERE id = ?`),
    listMappings: db.prepare(`SELECT ${MAPPING_COLS} FROM mappings WHERE server_id = ? ORDER BY created_at, rowid`),
    listAllMappings: db.prepare(`SELECT ${MAPPING_COLS} FROM mappings ORDER BY server_id, created_at, rowid`),
    findByName: db.prepare(`SELECT ${MAPPING_COLS} FROM mappings WHERE name = ?`),
    findByToken: db.prepare(`SELECT ${MAPPING_COLS} FROM mappings WHERE https_token = ?`),
    findByExternal: db.prepare(`SELECT ${MAPPING_COLS} FROM mappings WHERE server_id = ? AND external_port = ? AND protocol = ?`),
    updateMapping: db.prepare(
      `UPDATE mappings SET internal_port = @internal_port, external_port = @external_port, protocol = @protocol, description = @description,
         name = @name, http = @http, https_token = @https_token, source = @source, health_check = @health_check,
         access_control = @access_control, replica_group = @replica_group, updated_at = @updated_at WHERE server_id = @server_id AND id = @id`,
    ),
    deleteMapping: db.prepare('DELETE FROM mappings WHERE server_id = ? AND id = ?'),

    insertApiKey: db.prepare('INSERT INTO api_keys (id, owner, key_hash, created_at) VALUES (@id, @owner, @key_hash, @created_at)'),
    findApiKeyByHash: db.prepare('SELECT id, owner, key_hash, created_at FROM api_keys WHERE key_hash = ?'),
    listApiKeys: db.prepare('SELECT id, owner, key_hash, created_at FROM api_keys ORDER BY created_at, rowid'),
    deleteApiKey: db.prepare('DELETE FROM api_keys WHERE id = ?'),

    getMeta: db.prepare('SELECT value FROM meta WHERE key = ?'),
    setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

export interface SqliteStoreOptions {
  /** Milliseconds to wait for another process's write lock (default 5000). */
  busyTimeoutMs?: number;
}

export class SqliteStore implements Store {
  /** The file path, or `:memory:`. */
  readonly path: string;
  private readonly db: Database;
  private readonly st: Statements;
  private closed = false;

  /** Opens (creating if needed) and migrates the database at `path` (`:memory:` for an in-memory one). */
  constructor(path: string, opts: SqliteStoreOptions = {}) {
    this.path = path;
    this.db = new BetterSqlite3(path);
    try {
      this.db.pragma(`busy_timeout = ${Math.max(0, Math.trunc(opts.busyTimeoutMs ?? 5000))}`);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('foreign_keys = ON');
      migrate(this.db);
      this.st = prepareStatements(this.db);
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  /** Runs `fn` synchronously as one write transaction, mapping SQLite errors to PorticoErrors. */
  private run<T>(what: string, fn: () => T, write = false): Promise<T> {
    if (this.closed) return Promise.reject(new PorticoError('INTERNAL', `store is closed (${what})`));
    try {
      return Promise.resolve(write ? this.db.transaction(fn).immediate() : fn());
    } catch (err) {
      return Promise.reject(this.mapError(err, what));
    }
  }

  private mapError(err: unknown, what: string): unknown {
    if (isPorticoError(err)) return err;
    const code = sqliteCode(err);
    const msg = (err as Error)?.message ?? String(err);
    if (code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || (code === 'SQLITE_CONSTRAINT_UNIQUE' && /servers\.id|api_keys\.id|mappings\.id/.test(msg))) {
      return new PorticoError('CONFLICT', `${what}: the id is already in use`, {}, { cause: err });
    }
    if (code === 'SQLITE_CONSTRAINT_UNIQUE') {
      if (msg.includes('mappings.name')) return new PorticoError('NAME_TAKEN', `${what}: the mapping name is already in use`, {}, { cause: err });
      if (msg.includes('mappings.external_port')) return new PorticoError('PORT_ALREADY_MAPPED', `${what}: the external port is already mapped`, {}, { cause: err });
      return new PorticoError('CONFLICT', `${what}: ${msg}`, {}, { cause: err });
    }
    if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY') return new PorticoError('NOT_FOUND', `${what}: the server does not exist`, {}, { cause: err });
    if (code === 'SQLITE_CONSTRAINT_CHECK' || code === 'SQLITE_CONSTRAINT_NOTNULL') {
      return new PorticoError('VALIDATION_FAILED', `${what}: a field has a value the store refuses (${msg})`, {}, { cause: err });
    }
    if (code !== undefined) return new PorticoError('INTERNAL', `${what}: store error ${code}: ${msg}`, { sqliteCode: code }, { cause: err });
    return err;
  }

  /** Throws the uniqueness conflicts `m` would cause with mappings other than itself. */
  private checkMappingConflicts(m: MappingRecord): void {
    const byPort = this.st.findByExternal.get(m.serverId, m.externalPort, m.protocol) as MappingRow | undefined;
    if (byPort && byPort.id !== m.id) {
      throw new PorticoError('PORT_ALREADY_MAPPED', `external port ${m.externalPort}/${m.protocol} of server ${m.serverId} is already mapped by ${byPort.id}`, {
        external_port: m.externalPort,
        protocol: m.protocol,
        existing_mapping_id: byPort.id,
      });
    }
    if (m.name !== null) {
      const byName = this.st.findByName.get(m.name) as MappingRow | undefined;
      if (byName && byName.id !== m.id) {
        throw new PorticoError('NAME_TAKEN', `the mapping name "${m.name}" is already in use`, { name: m.name, existing_mapping_id: byName.id });
      }
    }
    if (m.httpsToken !== null) {
      const byToken = this.st.findByToken.get(m.httpsToken) as MappingRow | undefined;
      if (byToken && byToken.id !== m.id) throw new PorticoError('CONFLICT', 'the https token is already in use; generate another', { field: 'httpsToken' });
    }
  }

  createServer(s: NewServer): Promise<ServerRecord> {
    return this.run(
      `create server ${s.id}`,
      () => {
        if (this.st.getServer.get(s.id)) throw new PorticoError('CONFLICT', `server "${s.id}" already exists`, { id: s.id });
        const now = nowAfter();
        const rec: ServerRecord = {
          id: s.id,
          owner: s.owner,
          ports: [...s.ports].sort((a, b) => a - b),
          udp: s.udp,
          tokenHash: s.tokenHash,
          proxyEnabled: s.proxyEnabled ?? true,
          allowedIps: s.allowedIps ?? [],
          access: s.access ?? null,
          createdAt: now,
          updatedAt: now,
        };
        this.st.insertServer.run(serverToRow(rec));
        return rec;
      },
      true,
    );
  }

  getServer(id: string): Promise<ServerRecord | undefined> {
    return this.run('get server', () => {
      const r = this.st.getServer.get(id) as ServerRow | undefined;
      return r && serverFromRow(r);
    });
  }

  listServers(owner?: string): Promise<ServerRecord[]> {
    return this.run('list servers', () =>
      ((owner === undefined ? this.st.listServers.all() : this.st.listServersByOwner.all(owner)) as ServerRow[]).map(serverFromRow),
    );
  }

  updateServer(id: string, patch: ServerPatch): Promise<ServerRecord> {
    return this.run(
      `update server ${id}`,
      () => {
        const r = this.st.getServer.get(id) as ServerRow | undefined;
        if (!r) throw new PorticoError('NOT_FOUND', `server "${id}" not found`, { id });
        const cur = serverFromRow(r);
        const next: ServerRecord = { ...cur, ...definedOnly(patch), id: cur.id, createdAt: cur.createdAt, updatedAt: nowAfter(cur.updatedAt) };
        this.st.updateServer.run(serverToRow(next));
        return serverFromRow(serverToRow(next));
      },
      true,
    );
  }

  deleteServer(id: string): Promise<boolean> {
    return this.run(`delete server ${id}`, () => this.st.deleteServer.run(id).changes > 0, true);
  }

  createMapping(m: NewMapping): Promise<MappingRecord> {
    return this.run(
      `create mapping on server ${m.serverId}`,
      () => {
        if (!this.st.getServer.get(m.serverId)) throw new PorticoError('NOT_FOUND', `server "${m.serverId}" not found`, { id: m.serverId });
        if (this.st.getMappingById.get(m.id)) throw new PorticoError('CONFLICT', `mapping "${m.id}" already exists`, { id: m.id });
        const now = nowAfter();
        const rec: MappingRecord = { ...m, group: m.group ?? null, createdAt: now, updatedAt: now };
        this.checkMappingConflicts(rec);
        this.st.insertMapping.run(mappingToRow(rec));
        return mappingFromRow(mappingToRow(rec));
      },
      true,
    );
  }

  getMapping(serverId: string, id: string): Promise<MappingRecord | undefined> {
    return this.run('get mapping', () => {
      const r = this.st.getMapping.get(serverId, id) as MappingRow | undefined;
      return r && mappingFromRow(r);
    });
  }

  listMappings(serverId: string): Promise<MappingRecord[]> {
    return this.run('list mappings', () => (this.st.listMappings.all(serverId) as MappingRow[]).map(mappingFromRow));
  }

  listAllMappings(): Promise<MappingRecord[]> {
    return this.run('list all mappings', () => (this.st.listAllMappings.all() as MappingRow[]).map(mappingFromRow));
  }

  findMappingByName(name: string): Promise<MappingRecord | undefined> {
    return this.run('find mapping by name', () => {
      const r = this.st.findByName.get(name) as MappingRow | undefined;
      return r && mappingFromRow(r);
    });
  }

  findMappingByHttpsToken(token: string): Promise<MappingRecord | undefined> {
    return this.run('find mapping by https token', () => {
      const r = this.st.findByToken.get(token) as MappingRow | undefined;
      return r && mappingFromRow(r);
    });
  }

  updateMapping(serverId: string, id: string, patch: MappingPatch): Promise<MappingRecord> {
    return this.run(
      `update mapping ${id}`,
      () => {
        const r = this.st.getMapping.get(serverId, id) as MappingRow | undefined;
        if (!r) throw new PorticoError('NOT_FOUND', `mapping "${id}" not found on server "${serverId}"`, { id, server_id: serverId });
        const cur = mappingFromRow(r);
        const next: MappingRecord = {
          ...cur,
          ...definedOnly(patch),
          id: cur.id,
          serverId: cur.serverId,
          createdAt: cur.createdAt,
          updatedAt: nowAfter(cur.updatedAt),
        };
        this.checkMappingConflicts(next);
        this.st.updateMapping.run(mappingToRow(next));
        return mappingFromRow(mappingToRow(next));
      },
      true,
    );
  }

  deleteMapping(serverId: string, id: string): Promise<boolean> {
    return this.run(`delete mapping ${id}`, () => this.st.deleteMapping.run(serverId, id).changes > 0, true);
  }

  createApiKey(k: Omit<ApiKeyRecord, 'createdAt'>): Promise<ApiKeyRecord> {
    return this.run(
      'create api key',
      () => {
        const rec: ApiKeyRecord = { ...k, createdAt: nowAfter() };
        this.st.insertApiKey.run({ id: rec.id, owner: rec.owner, key_hash: rec.keyHash, created_at: rec.createdAt });
        return rec;
      },
      true,
    );
  }

  findApiKeyByHash(keyHash: string): Promise<ApiKeyRecord | undefined> {
    return this.run('find api key', () => {
      const r = this.st.findApiKeyByHash.get(keyHash) as ApiKeyRow | undefined;
      return r && apiKeyFromRow(r);
    });
  }

  listApiKeys(): Promise<ApiKeyRecord[]> {
    return this.run('list api keys', () => (this.st.listApiKeys.all() as ApiKeyRow[]).map(apiKeyFromRow));
  }

  deleteApiKey(id: string): Promise<boolean> {
    return this.run('delete api key', () => this.st.deleteApiKey.run(id).changes > 0, true);
  }

  getMeta(key: string): Promise<string | undefined> {
    return this.run('get meta', () => (this.st.getMeta.get(key) as { value: string } | undefined)?.value);
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.run(
      'set meta',
      () => {
        this.st.setMeta.run(key, value);
      },
      true,
    );
  }

  /** The applied schema version (PRAGMA user_version). */
  schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  /** Closes the database; later calls reject. Safe to call twice. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      if (this.path !== ':memory:') {
        // Fold the WAL back into the main file so a closed store is one self-contained file.
        try {
          this.db.pragma('wal_checkpoint(TRUNCATE)');
        } catch {
          /* best effort */
        }
      }
      this.db.close();
    }
    return Promise.resolve();
  }

  // ---- stats (usage statistics; relay/stats) ----

  private statsSt: ReturnType<typeof prepareStatsStatements> | null = null;

  private stats(): ReturnType<typeof prepareStatsStatements> {
    this.statsSt ??= prepareStatsStatements(this.db);
    return this.statsSt;
  }

  saveMappingStats(rows: MappingStatsRecord[]): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    return this.run(
      'save mapping stats',
      () => {
        const st = this.stats();
        for (const r of rows) {
          if (!this.st.getServer.get(r.serverId)) continue;
          st.upsert.run({
            server_id: r.serverId,
            mapping_id: r.mappingId,
            total_requests: r.totalRequests,
            total_connections: r.totalConnections,
            bytes_in: r.bytesIn,
            bytes_out: r.bytesOut,
            response_time_ms_sum: r.responseTimeMsSum,
            response_count: r.responseCount,
            visitors_sketch: json(r.visitorsSketch),
            last_accessed: r.lastAccessed,
            access_log: JSON.stringify(r.accessLog),
            updated_at: r.updatedAt,
          });
        }
      },
      true,
    );
  }

  listMappingStats(): Promise<MappingStatsRecord[]> {
    return this.run('list mapping stats', () =>
      (this.stats().list.all() as MappingStatsRow[]).map((r) => ({
        serverId: r.server_id,
        mappingId: r.mapping_id,
        totalRequests: r.total_requests,
        totalConnections: r.total_connections,
        bytesIn: r.bytes_in,
        bytesOut: r.bytes_out,
        responseTimeMsSum: r.response_time_ms_sum,
        responseCount: r.response_count,
        visitorsSketch: parseJson<unknown>(r.visitors_sketch),
        lastAccessed: r.last_accessed,
        accessLog: parseJson<AccessLogEntry[]>(r.access_log) ?? [],
        updatedAt: r.updated_at,
      })),
    );
  }

  // ---- users (access control: endpoint logins and user API keys; relay/access) ----

  private usersSt: ReturnType<typeof prepareUserStatements> | null = null;

  private users(): ReturnType<typeof prepareUserStatements> {
    this.usersSt ??= prepareUserStatements(this.db);
    return this.usersSt;
  }

  createUser(u: NewUser): Promise<UserRecord> {
    return this.run(
      `create user ${u.username}`,
      () => {
        const st = this.users();
        if (st.findUser.get(u.owner, u.username)) {
          throw new PorticoError('CONFLICT', `owner ${u.owner} already has a user named "${u.username}"`, { field: 'username', owner: u.owner });
        }
        if (st.getUser.get(u.id)) throw new PorticoError('CONFLICT', `user "${u.id}" already exists`, { id: u.id });
        const now = nowAfter();
        const rec: UserRecord = { ...u, createdAt: now, updatedAt: now };
        st.insertUser.run(userToRow(rec));
        return rec;
      },
      true,
    );
  }

  getUser(id: string): Promise<UserRecord | undefined> {
    return this.run('get user', () => {
      const r = this.users().getUser.get(id) as UserRow | undefined;
      return r && userFromRow(r);
    });
  }

  findUser(owner: string, username: string): Promise<UserRecord | undefined> {
    return this.run('find user', () => {
      const r = this.users().findUser.get(owner, username) as UserRow | undefined;
      return r && userFromRow(r);
    });
  }

  listUsers(owner?: string): Promise<UserRecord[]> {
    return this.run('list users', () => {
      const st = this.users();
      return ((owner === undefined ? st.listUsers.all() : st.listUsersByOwner.all(owner)) as UserRow[]).map(userFromRow);
    });
  }

  deleteUser(id: string): Promise<boolean> {
    return this.run(`delete user ${id}`, () => this.users().deleteUser.run(id).changes > 0, true);
  }

  createUserKey(k: Omit<UserKeyRecord, 'createdAt'>): Promise<UserKeyRecord> {
    return this.run(
      'create user key',
      () => {
        const st = this.users();
        if (!st.getUser.get(k.userId)) throw new PorticoError('NOT_FOUND', `user "${k.userId}" not found`, { id: k.userId });
        const rec: UserKeyRecord = { ...k, createdAt: nowAfter() };
        st.insertKey.run({ id: rec.id, user_id: rec.userId, key_hash: rec.keyHash, created_at: rec.createdAt });
        return rec;
      },
      true,
    );
  }

  findUserKeyByHash(keyHash: string): Promise<{ key: UserKeyRecord; user: UserRecord } | undefined> {
    return this.run('find user key', () => {
      const r = this.users().findKeyByHash.get(keyHash) as (UserRow & { key_id: string; key_hash: string; key_created_at: string }) | undefined;
      if (!r) return undefined;
      return { key: { id: r.key_id, userId: r.id, keyHash: r.key_hash, createdAt: r.key_created_at }, user: userFromRow(r) };
    });
  }

  countUserKeys(userIds: string[]): Promise<Map<string, number>> {
    return this.run('count user keys', () => {
      const st = this.users();
      const out = new Map<string, number>();
      for (const id of userIds) out.set(id, (st.countKeys.get(id) as { n: number }).n);
      return out;
    });
  }
}

// ---- users ----

interface UserRow {
  id: string;
  owner: string;
  username: string;
  password_hash: string | null;
  created_at: string;
  updated_at: string;
}

const USER_COLS = 'id, owner, username, password_hash, created_at, updated_at';

function userFromRow(r: UserRow): UserRecord {
  return { id: r.id, owner: r.owner, username: r.username, passwordHash: r.password_hash, createdAt: r.created_at, updatedAt: r.updated_at };
}

function userToRow(u: UserRecord): UserRow {
  return { id: u.id, owner: u.owner, username: u.username, password_hash: u.passwordHash, created_at: u.createdAt, updated_at: u.updatedAt };
}

function prepareUserStatements(db: Database) {
  const U = USER_COLS.split(', ')
    .map((c) => `u.${c}`)
    .join(', ');
  return {
    insertUser: db.prepare(`INSERT INTO users (${USER_COLS}) VALUES (@id, @owner, @username, @password_hash, @created_at, @updated_at)`),
    getUser: db.prepare(`SELECT ${USER_COLS} FROM users WHERE id = ?`),
    findUser: db.prepare(`SELECT ${USER_COLS} FROM users WHERE owner = ? AND username = ?`),
    listUsers: db.prepare(`SELECT ${USER_COLS} FROM users ORDER BY created_at, rowid`),
    listUsersByOwner: db.prepare(`SELECT ${USER_COLS} FROM users WHERE owner = ? ORDER BY created_at, rowid`),
    deleteUser: db.prepare('DELETE FROM users WHERE id = ?'),
    insertKey: db.prepare('INSERT INTO user_keys (id, user_id, key_hash, created_at) VALUES (@id, @user_id, @key_hash, @created_at)'),
    findKeyByHash: db.prepare(
      `SELECT ${U}, k.id AS key_id, k.key_hash AS key_hash, k.created_at AS key_created_at FROM user_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?`,
    ),
    countKeys: db.prepare('SELECT COUNT(*) AS n FROM user_keys WHERE user_id = ?'),
  };
}

// ---- stats ----

interface MappingStatsRow {
  server_id: string;
  mapping_id: string;
  total_requests: number;
  total_connections: number;
  bytes_in: number;
  bytes_out: number;
  response_time_ms_sum: number;
  response_count: number;
  visitors_sketch: string | null;
  last_accessed: string | null;
  access_log: string | null;
  updated_at: string;
}

const STATS_COLS =
  'server_id, mapping_id, total_requests, total_connections, bytes_in, bytes_out, response_time_ms_sum, response_count, visitors_sketch, last_accessed, access_log, updated_at';

function prepareStatsStatements(db: Database) {
  return {
    upsert: db.prepare(
      `INSERT INTO mapping_stats (${STATS_COLS}) VALUES (@server_id, @mapping_id, @total_requests, @total_connections, @bytes_in, @bytes_out,
         @response_time_ms_sum, @response_count, @visitors_sketch, @last_accessed, @access_log, @updated_at)
       ON CONFLICT (server_id, mapping_id) DO UPDATE SET total_requests = excluded.total_requests, total_connections = excluded.total_connections,
         bytes_in = excluded.bytes_in, bytes_out = excluded.bytes_out, response_time_ms_sum = excluded.response_time_ms_sum,
         response_count = excluded.response_count, visitors_sketch = excluded.visitors_sketch, last_accessed = excluded.last_accessed,
         access_log = excluded.access_log, updated_at = excluded.updated_at`,
    ),
    list: db.prepare(`SELECT ${STATS_COLS} FROM mapping_stats ORDER BY server_id, mapping_id`),
  };
}

/** A patch without its undefined fields, so `{name: undefined}` leaves name alone. */
function definedOnly<T extends object>(patch: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(patch)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
