/**
 * The relay's persistent state behind one interface: SQLite now
 * (relay/store/sqlite.ts), PostgreSQL later. Every method is async so a
 * networked store fits the same shape. Records use camelCase; timestamps are
 * ISO-8601 strings (UTC).
 */

export type Protocol = 'tcp' | 'udp';

export interface ServerRecord {
  /** DNS-label-safe id: [a-z0-9]([a-z0-9-]{0,61}[a-z0-9])? */
  id: string;
  owner: string;
  /** Public ports allocated to this server (contiguous when possible), ascending. */
  ports: number[];
  udp: boolean;
  /** sha256 hex of the agent token secret; never the token itself. */
  tokenHash: string;
  /** HTTPS proxy switch (PUT /proxy). */
  proxyEnabled: boolean;
  /** Server-wide IP allowlist for the proxy (PUT /proxy `allowedIps`). */
  allowedIps: string[];
  /** Server-wide access control document (PUT /proxy/access), as given. */
  access: Record<string, unknown> | null;
  createdAt: string;
  updatedAt: string;
}

export interface MappingRecord {
  /** `port_` + random, stable. */
  id: string;
  serverId: string;
  internalPort: number;
  externalPort: number;
  protocol: Protocol;
  description: string;
  /** Unique per relay when set (https://{owner}-{name}.{domain}). */
  name: string | null;
  /** Publish an HTTPS endpoint too. */
  http: boolean;
  /** Random >=128-bit base32 token for https://{token}.secure.{domain}; set when http. */
  httpsToken: string | null;
  /** Who declared it: the management API or the agent's own config. */
  source: 'api' | 'agent';
  healthCheck: Record<string, unknown> | null;
  accessControl: Record<string, unknown> | null;
  /** Replica group: mappings of one owner with the same group share https://{owner}-{group}.{domain} and balance (docs/replicas.md). */
  group: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface ApiKeyRecord {
  id: string;
  /** null = admin key (sees everything); otherwise scoped to this owner. */
  owner: string | null;
  /** sha256 hex of the key secret. */
  keyHash: string;
  createdAt: string;
}

export type NewServer = Omit<ServerRecord, 'createdAt' | 'updatedAt' | 'proxyEnabled' | 'allowedIps' | 'access'> &
  Partial<Pick<ServerRecord, 'proxyEnabled' | 'allowedIps' | 'access'>>;
export type ServerPatch = Partial<Omit<ServerRecord, 'id' | 'createdAt' | 'updatedAt'>>;
export type NewMapping = Omit<MappingRecord, 'createdAt' | 'updatedAt' | 'group'> & { group?: string | null };
export type MappingPatch = Partial<Omit<MappingRecord, 'id' | 'serverId' | 'createdAt' | 'updatedAt'>>;

export interface Store {
  /** Creates a server; throws PorticoError CONFLICT if the id exists. */
  createServer(s: NewServer): Promise<ServerRecord>;
  getServer(id: string): Promise<ServerRecord | undefined>;
  /** All servers, or those of one owner. Ordered by createdAt. */
  listServers(owner?: string): Promise<ServerRecord[]>;
  /** Throws NOT_FOUND if missing. Bumps updatedAt. */
  updateServer(id: string, patch: ServerPatch): Promise<ServerRecord>;
  /** Deletes the server and its mappings; false if it did not exist. */
  deleteServer(id: string): Promise<boolean>;

  createMapping(m: NewMapping): Promise<MappingRecord>;
  getMapping(serverId: string, id: string): Promise<MappingRecord | undefined>;
  listMappings(serverId: string): Promise<MappingRecord[]>;
  /** Every mapping of every server (the relay builds its routing tables from this at start). */
  listAllMappings(): Promise<MappingRecord[]>;
  findMappingByName(name: string): Promise<MappingRecord | undefined>;
  findMappingByHttpsToken(token: string): Promise<MappingRecord | undefined>;
  updateMapping(serverId: string, id: string, patch: MappingPatch): Promise<MappingRecord>;
  deleteMapping(serverId: string, id: string): Promise<boolean>;

  createApiKey(k: Omit<ApiKeyRecord, 'createdAt'>): Promise<ApiKeyRecord>;
  findApiKeyByHash(keyHash: string): Promise<ApiKeyRecord | undefined>;
  listApiKeys(): Promise<ApiKeyRecord[]>;
  deleteApiKey(id: string): Promise<boolean>;

  /** Small key/value table for relay-wide facts (schema version, CA fingerprint, …). */
  getMeta(key: string): Promise<string | undefined>;
  setMeta(key: string, value: string): Promise<void>;

  close(): Promise<void>;

  // ---- stats (usage statistics, relay/stats; flushed periodically) ----

  /** Inserts or replaces the statistics rows (rows of servers that no longer exist are skipped). */
  saveMappingStats(rows: MappingStatsRecord[]): Promise<void>;
  /** Every stored statistics row (loaded once at start). */
  listMappingStats(): Promise<MappingStatsRecord[]>;

  // ---- users (access control: HTTPS endpoint logins and user API keys; relay/access) ----

  /** Creates a user; throws CONFLICT when the owner already has this username (case-insensitive). */
  createUser(u: NewUser): Promise<UserRecord>;
  getUser(id: string): Promise<UserRecord | undefined>;
  /** The owner's user of that name (case-insensitive). */
  findUser(owner: string, username: string): Promise<UserRecord | undefined>;
  /** All users, or those of one owner. Ordered by createdAt. */
  listUsers(owner?: string): Promise<UserRecord[]>;
  /** Deletes the user and its keys; false if it did not exist. */
  deleteUser(id: string): Promise<boolean>;
  createUserKey(k: Omit<UserKeyRecord, 'createdAt'>): Promise<UserKeyRecord>;
  /** The key with this sha256 hash and its user. */
  findUserKeyByHash(keyHash: string): Promise<{ key: UserKeyRecord; user: UserRecord } | undefined>;
  /** Number of API keys of each user id given. */
  countUserKeys(userIds: string[]): Promise<Map<string, number>>;
}

// ---- stats ----

/** One access-log entry (the seed API's fields). */
export interface AccessLogEntry {
  timestamp: string;
  client_ip: string;
  user: string | null;
  method: string;
  path: string;
  status_code: number;
  response_time_ms: number;
  user_agent: string | null;
}

/** Usage statistics of one mapping (identity mappings included), as stored. */
export interface MappingStatsRecord {
  serverId: string;
  mappingId: string;
  totalRequests: number;
  totalConnections: number;
  bytesIn: number;
  bytesOut: number;
  responseTimeMsSum: number;
  responseCount: number;
  /** Serialised unique-visitor sketch (relay/stats/hll.ts), or null. */
  visitorsSketch: unknown;
  lastAccessed: string | null;
  /** The most recent access-log entries, oldest first. */
  accessLog: AccessLogEntry[];
  updatedAt: string;
}

// ---- users ----

/** A login of the HTTPS endpoints of one owner's servers. */
export interface UserRecord {
  /** `usr_` + random. */
  id: string;
  owner: string;
  username: string;
  /** Self-describing scrypt hash (relay/access/passwords.ts), or null: API keys only. */
  passwordHash: string | null;
  createdAt: string;
  updatedAt: string;
}

export type NewUser = Omit<UserRecord, 'createdAt' | 'updatedAt'>;

/** A user's API key for the HTTPS endpoints (Authorization: Bearer); only its sha256 is stored. */
export interface UserKeyRecord {
  id: string;
  userId: string;
  keyHash: string;
  createdAt: string;
}
