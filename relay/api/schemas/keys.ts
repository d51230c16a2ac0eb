/** Request and response schemas of the /v1/keys routes. */
import { labelSchema, okEnvelope, timestampSchema } from './common.js';

export interface CreateKeyBody {
  owner: string;
}

export const createKeyBodySchema = {
  type: 'object',
  required: ['owner'],
  properties: { owner: { ...labelSchema, description: 'The key sees and changes only servers of this owner' } },
  additionalProperties: false,
} as const;

export const keyIdParamsSchema = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 64 } },
  additionalProperties: false,
} as const;

const keyProperties = {
  id: { type: 'string' },
  owner: { type: ['string', 'null'] },
  created_at: timestampSchema,
} as const;

export const apiKeySchema = { type: 'object', required: ['id', 'owner', 'created_at'], properties: keyProperties } as const;

export const createdKeySchema = {
  type: 'object',
  required: ['id', 'owner', 'key', 'created_at'],
  properties: { ...keyProperties, key: { type: 'string', description: 'Shown once; only its hash is stored' } },
} as const;

export const createKeyResponse = okEnvelope(createdKeySchema);
export const listKeysResponse = okEnvelope({ type: 'array', items: apiKeySchema }, { total: { type: 'integer' } });
export const deletedKeyResponse = okEnvelope({
  type: 'object',
  required: ['id', 'deleted'],
  properties: { id: { type: 'string' }, deleted: { type: 'boolean' } },
});
