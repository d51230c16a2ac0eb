/** Request and response schemas of the /v1/users routes (logins and API keys of the HTTPS endpoints). */
import { labelSchema, okEnvelope, timestampSchema } from './common.js';

export interface CreateUserBody {
  owner?: string;
  username: string;
  password?: string;
}

export interface ListUsersQuery {
  owner?: string;
}

/** Same rule as relay/access/auth.ts USERNAME_RE. */
export const USERNAME_PATTERN = '^[A-Za-z0-9._@-]{1,64}$';
export const PASSWORD_MIN_LENGTH = 8;

export const createUserBodySchema = {
  type: 'object',
  required: ['username'],
  properties: {
    owner: { ...labelSchema, description: 'Owner whose servers this user may sign in to (default: the key’s owner, or "default" for the admin key)' },
    username: { type: 'string', pattern: USERNAME_PATTERN, description: 'Unique per owner (case-insensitive); letters, digits, . _ - @' },
    password: {
      type: 'string',
      minLength: PASSWORD_MIN_LENGTH,
      maxLength: 1024,
      description: 'For Basic auth and the browser sign-in; stored as a scrypt hash. Omit for a user that signs in with API keys only',
    },
  },
  additionalProperties: false,
} as const;

export const listUsersQuerySchema = {
  type: 'object',
  properties: { owner: { ...labelSchema, description: 'Only this owner’s users (owner-scoped keys always see only their own)' } },
  additionalProperties: false,
} as const;

export const userIdParamsSchema = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 64, description: 'User id (`usr_…`)' } },
  additionalProperties: false,
} as const;

export const userSchema = {
  type: 'object',
  required: ['id', 'owner', 'username', 'has_password', 'created_at'],
  properties: {
    id: { type: 'string' },
    owner: { type: 'string' },
    username: { type: 'string' },
    has_password: { type: 'boolean' },
    api_keys: { type: 'integer', description: 'Number of API keys (list only)' },
    created_at: timestampSchema,
    updated_at: timestampSchema,
  },
} as const;

export const createdUserKeySchema = {
  type: 'object',
  required: ['id', 'user_id', 'username', 'key', 'created_at'],
  properties: {
    id: { type: 'string' },
    user_id: { type: 'string' },
    username: { type: 'string' },
    key: { type: 'string', description: 'Shown once; send it as `Authorization: Bearer <key>` to the owner’s HTTPS endpoints. Only its hash is stored' },
    created_at: timestampSchema,
  },
} as const;

export const userResponse = okEnvelope(userSchema);
export const listUsersResponse = okEnvelope({ type: 'array', items: userSchema }, { total: { type: 'integer' } });
export const userKeyResponse = okEnvelope(createdUserKeySchema);
export const deletedUserResponse = okEnvelope({
  type: 'object',
  required: ['id', 'deleted'],
  properties: { id: { type: 'string' }, deleted: { type: 'boolean' } },
});
