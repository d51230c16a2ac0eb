/**
 * Numbered schema migrations of the SQLite store. The applied version is kept
 * in `PRAGMA user_version`; each migration runs in its own IMMEDIATE
 * transaction together with the version bump, so a crash or a second process
 * never sees half a migration and running `migrate` again is a no-op.
 * Append new migrations; never edit an applied one.
 */
import type { Database } from 'better-sqlite3';

import { PorticoError } from '../../shared/errors.js';

export interface Migration {
  /** 1, 2, 3 … in order, no gaps. */
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema: meta, servers, mappings, api keys',
    sql: `
      CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      );

      CREATE TABLE servers (
        id            TEXT PRIMARY KEY,
        owner         TEXT NOT NULL,
        ports         TEXT NOT NULL CHECK (json_valid(ports) AND json_type(ports) = 'array'),
        udp           INTEGER NOT NULL CHECK (udp IN (0, 1)),
        token_hash    TEXT NOT NULL,
        proxy_enabled INTEGER NOT NULL DEFAULT 1 CHECK (proxy_enabled IN (0, 1)),
        allowed_ips   TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(allowed_ips) AND json_type(allowed_ips) = 'array'),
        access        TEXT CHECK (access IS NULL OR json_valid(access)),
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL
      );
      CREATE INDEX servers_owner ON servers (owner);

      CREATE TABLE mappings (
        id             TEXT PRIMARY KEY,
        server_id      TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
        internal_port  INTEGER NOT NULL CHECK (internal_port BETWEEN 1 AND 65535),
        external_port  INTEGER NOT NULL CHECK (external_port BETWEEN 1 AND 65535),
        protocol       TEXT NOT NULL CHECK (protocol IN ('tcp', 'udp')),
        description    TEXT NOT NULL DEFAULT '',
        name           TEXT COLLATE NOCASE,
        http           INTEGER NOT NULL CHECK (http IN (0, 1)),
        https_token    TEXT COLLATE NOCASE,
        source         TEXT NOT NULL CHECK (source IN ('api', 'agent')),
        health_check   TEXT CHECK (health_check IS NULL OR json_valid(health_check)),
        access_control TEXT CHECK (access_control IS NULL OR json_valid(access_control)),
        created_at     TEXT NOT NULL,
        updated_at     TEXT NOT NULL
      );
      CREATE UNIQUE INDEX mappings_name ON mappings (name) WHERE name IS NOT NULL;
      CREATE UNIQUE INDEX mappings_https_token ON mappings (https_token) WHERE https_token IS NOT NULL;
      CREATE UNIQUE INDEX mappings_external ON mappings (server_id, external_port, protocol);

      CREATE TABLE api_keys (
        id         TEXT PRIMARY KEY,
        owner      TEXT,
        key_hash   TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'access-control users (owner-scoped logins and user API keys) and per-mapping usage statistics',
    sql: `
      CREATE TABLE users (
        id            TEXT PRIMARY KEY,
        owner         TEXT NOT NULL,
        username      TEXT NOT NULL COLLATE NOCASE,
        password_hash TEXT,
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL
      );
      CREATE UNIQUE INDEX users_owner_username ON users (owner, username);

      -- A user's API keys for the HTTPS endpoints (Bearer); only hashes are stored.
      CREATE TABLE user_keys (
        id         TEXT PRIMARY KEY,
        user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        key_hash   TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
      );

      -- Counted in memory by the relay and flushed here periodically.
      CREATE TABLE mapping_stats (
        mapping_id       TEXT PRIMARY KEY REFERENCES mappings (id) ON DELETE CASCADE,
        server_id        TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
        total_requests   INTEGER NOT NULL DEFAULT 0,
        total_connections INTEGER NOT NULL DEFAULT 0,
        bytes_in         INTEGER NOT NULL DEFAULT 0,
        bytes_out        INTEGER NOT NULL DEFAULT 0,
        response_time_ms_sum REAL NOT NULL DEFAULT 0,
        response_count   INTEGER NOT NULL DEFAULT 0,
        visitors_sketch  TEXT CHECK (visitors_sketch IS NULL OR json_valid(visitors_sketch)),
        last_accessed    TEXT,
        access_log       TEXT CHECK (access_log IS NULL OR json_valid(access_log)),
        updated_at       TEXT NOT NULL
      );
    `,
  },
  {
    version: 3,
    name: 'replica groups on mappings; usage statistics keyed by server and mapping (identity mappings too)',
    sql: `
      -- Mappings of one owner with the same group form a replica set (docs/replicas.md).
      ALTER TABLE mappings ADD COLUMN replica_group TEXT COLLATE NOCASE;

      -- Statistics of identity mappings (identity-<port>, not rows of mappings) are kept too:
      -- the table hangs off the server; rows of deleted mappings go with a trigger.
      DROP TABLE mapping_stats;
      CREATE TABLE mapping_stats (
        server_id         TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
        mapping_id        TEXT NOT NULL,
        total_requests    INTEGER NOT NULL DEFAULT 0,
        total_connections INTEGER NOT NULL DEFAULT 0,
        bytes_in          INTEGER NOT NULL DEFAULT 0,
        bytes_out         INTEGER NOT NULL DEFAULT 0,
        response_time_ms_sum REAL NOT NULL DEFAULT 0,
        response_count    INTEGER NOT NULL DEFAULT 0,
        visitors_sketch   TEXT CHECK (visitors_sketch IS NULL OR json_valid(visitors_sketch)),
        last_accessed     TEXT,
        access_log        TEXT CHECK (access_log IS NULL OR json_valid(access_log)),
        updated_at        TEXT NOT NULL,
        PRIMARY KEY (server_id, mapping_id)
      );
      CREATE TRIGGER mappings_delete_stats AFTER DELETE ON mappings BEGIN
        DELETE FROM mapping_stats WHERE server_id = OLD.server_id AND mapping_id = OLD.id;
      END;
    `,
  },
];

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Brings `db` up to SCHEMA_VERSION; returns the versions before and after. */
export function migrate(db: Database, migrations: readonly Migration[] = MIGRATIONS): { from: number; to: number } {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration list is out of order at index ${i} (version ${m.version})`);
  });
  const latest = migrations.length;
  const version = (): number => db.pragma('user_version', { simple: true }) as number;
  const from = version();
  if (from > latest) {
    throw new PorticoError(
      'CONFIG_INVALID',
      `store.url: the database schema is version ${from}, newer than this build of portico supports (${latest}); upgrade portico or use another database`,
      { key: 'store.url', schemaVersion: from, supported: latest },
    );
  }
  for (const m of migrations) {
    // Re-check inside the write lock: another process may have migrated meanwhile.
    db.transaction(() => {
      if (version() >= m.version) return;
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
  }
  return { from, to: version() };
}
