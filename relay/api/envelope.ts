/**
 * The API's one response shape: `{success, data, meta}` on success and
 * `{success: false, error: {code, message, details}}` on failure, with the
 * HTTP status of the error code. Fastify's own errors are mapped here too.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ERROR_CODES, type ErrorCode, isPorticoError } from '../../shared/errors.js';
import { LABEL_PATTERN } from './schemas/common.js';

export interface OkEnvelope<T> {
  success: true;
  data: T;
  meta: Record<string, unknown>;
}

export interface ErrorEnvelope {
  success: false;
  error: { code: ErrorCode; message: string; details: Record<string, unknown> };
}

/** A success body; `meta` always carries the request id. */
export function ok<T>(request: FastifyRequest, data: T, meta: Record<string, unknown> = {}): OkEnvelope<T> {
  return { success: true, data, meta: { ...meta, request_id: request.id } };
}

export function errorBody(code: ErrorCode, message: string, details: Record<string, unknown> = {}): ErrorEnvelope {
  return { success: false, error: { code, message, details } };
}

export function sendError(reply: FastifyReply, code: ErrorCode, message: string, details?: Record<string, unknown>): FastifyReply {
  return reply.code(ERROR_CODES[code].status).send(errorBody(code, message, details));
}

interface AjvIssue {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

/** The request field a schema validation error is about, as a dotted path (`ports`, `health_check.path`). */
export function validationField(issue: AjvIssue | undefined, context: string | undefined): string {
  if (!issue) return context ?? 'body';
  const parts = issue.instancePath.split('/').filter(Boolean).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const extra = issue.params.missingProperty ?? issue.params.additionalProperty;
  if (typeof extra === 'string') parts.push(extra);
  return parts.length > 0 ? parts.join('.') : (context ?? 'body');
}

function validationMessage(issue: AjvIssue | undefined, field: string): string {
  if (!issue) return `invalid ${field}`;
  switch (issue.keyword) {
    case 'required':
      return `${field} is required`;
    case 'additionalProperties':
      return `unknown field ${field}`;
    case 'pattern':
      if (issue.params.pattern === LABEL_PATTERN) return `${field} must be a DNS label: 1-63 lowercase letters, digits and inner dashes`;
      return `${field} ${issue.message ?? 'is invalid'}`;
    default:
      return `${field} ${issue.message ?? 'is invalid'}`;
  }
}

/** Installs the error and not-found handlers so every failure uses the envelope. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (isPorticoError(err)) {
      if (err.status >= 500) request.log.error({ err }, 'request failed');
      return sendError(reply, err.code, err.message, err.details);
    }
    if (err.validation) {
      const issue = err.validation[0] as AjvIssue | undefined;
      const field = validationField(issue, err.validationContext);
      return sendError(reply, 'VALIDATION_FAILED', validationMessage(issue, field), {
        field,
        location: err.validationContext ?? 'body',
      });
    }
    const status = err.statusCode ?? 500;
    if (status === 404) return sendError(reply, 'NOT_FOUND', err.message);
    if (status === 429) return sendError(reply, 'RATE_LIMITED', err.message);
    if (status >= 400 && status < 500) {
      // Body parser errors: malformed JSON, empty JSON body, wrong content type, too large.
      return reply.code(status).send(errorBody('VALIDATION_FAILED', err.message, { field: 'body', reason: err.code ?? 'bad_request' }));
    }
    request.log.error({ err }, 'unexpected error');
    return sendError(reply, 'INTERNAL', 'internal error; see the relay log');
  });

  app.setNotFoundHandler((request, reply) => {
    sendError(reply, 'NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`);
  });
}
