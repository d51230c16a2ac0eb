/**
 * JSON schemas shared by every route: the envelopes, the DNS-label rule, path
 * params. Fastify validates with them and @fastify/swagger publishes them.
 */

/** DNS-label-safe ids and owners: lowercase, digits, inner dashes, 1..63 chars. */
export const LABEL_PATTERN = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';

export const labelSchema = { type: 'string', pattern: LABEL_PATTERN, minLength: 1, maxLength: 63 } as const;

export const timestampSchema = { type: 'string', description: 'ISO-8601 UTC timestamp' } as const;

export const errorEnvelopeSchema = {
  type: 'object',
  required: ['success', 'error'],
  properties: {
    success: { type: 'boolean', enum: [false] },
    error: {
      type: 'object',
      required: ['code', 'message', 'details'],
      properties: {
        code: { type: 'string', description: 'Stable error code (see docs/errors.md)' },
        message: { type: 'string' },
        details: { type: 'object', additionalProperties: true },
      },
    },
  },
} as const;

/** `{success: true, data, meta}` around a data schema. */
export function okEnvelope<D extends object>(data: D, meta: Record<string, unknown> = {}) {
  return {
    type: 'object',
    required: ['success', 'data', 'meta'],
    properties: {
      success: { type: 'boolean', enum: [true] },
      data,
      meta: { type: 'object', properties: { request_id: { type: 'string' }, ...meta }, additionalProperties: true },
    },
  } as const;
}

/** Error responses every authenticated route may give. */
export const errorResponses = {
  '4xx': { description: 'Client error (see error.code)', ...errorEnvelopeSchema },
  '5xx': { description: 'Server error (see error.code)', ...errorEnvelopeSchema },
} as const;

export const serverIdParamsSchema = {
  type: 'object',
  required: ['id'],
  properties: { id: { ...labelSchema, description: 'Server id' } },
  additionalProperties: false,
} as const;
