/** Request and response schemas of the /v1/servers routes (snake_case on the wire). */
import { labelSchema, okEnvelope, timestampSchema } from './common.js';

export const PORTS_PER_SERVER_MIN = 10;
export const PORTS_PER_SERVER_MAX = 40;

export interface CreateServerBody {
  id?: string;
  owner?: string;
  ports?: number;
  udp?: boolean;
}

export interface ListServersQuery {
  owner?: string;
}

export interface UdpBody {
  enabled: boolean;
}

export const createServerBodySchema = {
  type: 'object',
  properties: {
    id: { ...labelSchema, description: 'Server id; random `srv-xxxxxxxx` when omitted' },
    owner: { ...labelSchema, description: 'Owner (user) name, used in HTTPS hostnames; default `default`' },
    ports: {
      type: 'integer',
      minimum: PORTS_PER_SERVER_MIN,
      maximum: PORTS_PER_SERVER_MAX,
      description: 'Size of the public port block; default `ports.per_server`',
    },
    udp: { type: 'boolean', description: 'Enable UDP forwarding for this server' },
  },
  additionalProperties: false,
} as const;

export const listServersQuerySchema = {
  type: 'object',
  properties: { owner: { ...labelSchema, description: 'Only servers of this owner (admin key only)' } },
  additionalProperties: false,
} as const;

export const udpBodySchema = {
  type: 'object',
  required: ['enabled'],
  properties: { enabled: { type: 'boolean' } },
  additionalProperties: false,
} as const;

const serverProperties = {
  id: { type: 'string' },
  owner: { type: 'string' },
  ports: { type: 'array', items: { type: 'integer' } },
  udp: { type: 'boolean' },
  proxy_enabled: { type: 'boolean' },
  created_at: timestampSchema,
  updated_at: timestampSchema,
} as const;

const serverRequired = ['id', 'owner', 'ports', 'udp', 'created_at'];

const statusProperties = {
  online: { type: 'boolean' },
  agent_version: { type: ['string', 'null'] },
  connected_since: { type: ['string', 'null'] },
  agents_connected: { type: 'integer', description: "Agents connected with this server's token (replicas); agent_version and connected_since describe the oldest" },
} as const;

/** A server in lists and after updates. */
export const serverSchema = {
  type: 'object',
  required: [...serverRequired, 'online'],
  properties: { ...serverProperties, ...statusProperties },
} as const;

/** A mapping as summarised on the server detail view. */
export const mappingSummarySchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    internal_port: { type: 'integer' },
    external_port: { type: 'integer' },
    protocol: { type: 'string', enum: ['tcp', 'udp'] },
    name: { type: ['string', 'null'] },
    http: { type: 'boolean' },
    description: { type: 'string' },
    source: { type: 'string', enum: ['api', 'agent'] },
  },
} as const;

export const serverDetailSchema = {
  type: 'object',
  required: [...serverRequired, 'online', 'mappings'],
  properties: {
    ...serverProperties,
    ...statusProperties,
    remote_address: { type: ['string', 'null'] },
    open_streams: { type: 'integer' },
    transport: { type: ['string', 'null'] },
    udp_stats: {
      type: ['object', 'null'],
      properties: {
        flows: { type: 'integer' },
        datagrams_in: { type: 'integer' },
        datagrams_out: { type: 'integer' },
        drops: { type: 'integer' },
        refused_by_cap: { type: 'integer' },
        expired_flows: { type: 'integer' },
        sealed_flows: { type: 'integer', description: 'flows running on a sealed data connection now (docs/native-data-path.md)' },
        sealed_total: { type: 'integer', description: 'flows moved onto a sealed data connection since the relay started' },
      },
    },
    public_hostname: { type: 'string' },
    mappings: { type: 'array', items: mappingSummarySchema },
  },
} as const;

/** The create response: the only time the agent token is shown. */
export const createdServerSchema = {
  type: 'object',
  required: [...serverRequired, 'agent_token'],
  properties: { ...serverProperties, agent_token: { type: 'string', description: 'Shown once; store it' } },
} as const;

export const tokenSchema = {
  type: 'object',
  required: ['id', 'agent_token'],
  properties: { id: { type: 'string' }, agent_token: { type: 'string', description: 'Shown once; the old token stops working' } },
} as const;

export const deletedSchema = {
  type: 'object',
  required: ['id', 'deleted'],
  properties: { id: { type: 'string' }, deleted: { type: 'boolean' } },
} as const;

export const createServerResponse = okEnvelope(createdServerSchema);
export const listServersResponse = okEnvelope({ type: 'array', items: serverSchema }, { total: { type: 'integer' } });
export const serverDetailResponse = okEnvelope(serverDetailSchema);
export const serverResponse = okEnvelope(serverSchema);
export const tokenResponse = okEnvelope(tokenSchema);
export const deletedResponse = okEnvelope(deletedSchema);
