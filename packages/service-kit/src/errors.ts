import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { errorFields } from './error-fields.js'

// A type, not an interface, so it fits the open object types JSON-schema type providers derive.
export type ErrorBody = {
  error: string
  message: string
  wechat_errcode?: number
}

/** The contract's error shape as a response schema, for every route's 4xx and 5xx. */
export const ERROR_BODY_SCHEMA = {
  type: 'object',
  properties: { error: { type: 'string' }, message: { type: 'string' }, wechat_errcode: { type: 'integer' } }
} as const

export const ERROR_RESPONSES = { '4xx': ERROR_BODY_SCHEMA, '5xx': ERROR_BODY_SCHEMA } as const

// `| undefined` throughout: callers pass what they have, with no conditional spreads.
export interface ServiceErrorOptions {
  wechatErrcode?: number | undefined
  headers?: Record<string, string> | undefined
  /** For the operator's log only (see `detail` below). */
  detail?: string | undefined
  /** The error this one stands for (a Redis or got error): kept for the log, never answered. */
  cause?: unknown
}

/**
 * Every error a service answers with: a snake_case code, a message for a person, an
 * HTTP status, and WeChat's errcode where WeChat answered. Messages never carry secrets:
 * they are written here or by the callers, never copied from a library's error. The
 * library's error is kept as `cause`, and logged through errorFields(), which scrubs it.
 */
export class ServiceError extends Error {
  readonly code: string
  readonly statusCode: number
  readonly wechatErrcode: number | undefined
  readonly headers: Record<string, string>
  /**
   * For the operator's log only, never the response: what exactly failed (a socket error code,
   * the broker's own error). Holds no secret.
   */
  readonly detail: string | undefined

  constructor (code: string, message: string, statusCode: number, opts: ServiceErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'ServiceError'
    this.code = code
    this.statusCode = statusCode
    this.wechatErrcode = opts.wechatErrcode
    this.headers = opts.headers ?? {}
    this.detail = opts.detail
  }

  toJSON (): ErrorBody {
    const body: ErrorBody = { error: this.code, message: this.message }
    if (this.wechatErrcode !== undefined) body.wechat_errcode = this.wechatErrcode
    return body
  }
}

/** Maps what fastify itself throws (validation, parsing, limits) onto the contract's error shape. */
function fromFastifyError (err: FastifyError): ServiceError | undefined {
  if (err.validation !== undefined) {
    return new ServiceError(
      'invalid_body',
      `Invalid request: ${err.validationContext ?? 'body'} ${err.validation[0]?.message ?? 'is not valid'}`.slice(
        0,
        300
      ),
      400
    )
  }
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ServiceError(
        'unsupported_media_type',
        'Send application/json or application/x-www-form-urlencoded.',
        415
      )
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ServiceError('payload_too_large', 'The request body is too large.', 413)
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ServiceError('invalid_body', 'The request body is empty or malformed.', 400)
  }
  if (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new ServiceError('invalid_body', 'The request body is not valid JSON.', 400)
  }
  const status = err.statusCode ?? 500
  if (status >= 400 && status < 500) {
    return new ServiceError(
      status === 429 ? 'rate_limited' : 'bad_request',
      status === 429 ? 'Too many requests.' : 'Bad request.',
      status
    )
  }
  return undefined
}

export function toServiceError (err: unknown): ServiceError {
  if (err instanceof ServiceError) return err
  return fromFastifyError(err as FastifyError) ?? new ServiceError('internal_error', 'Internal error.', 500)
}

function sendError (reply: FastifyReply, err: ServiceError): FastifyReply {
  for (const [k, v] of Object.entries(err.headers)) reply.header(k, v)
  return reply.code(err.statusCode).type('application/json; charset=utf-8').send(err.toJSON())
}

/** Installs the JSON error shape for errors and for unknown routes. */
export function installErrorHandling (app: FastifyInstance): void {
  app.setErrorHandler((err: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const se = toServiceError(err)
    if (se.statusCode >= 500 && !(err instanceof ServiceError)) {
      request.log.error({ err: errorFields(err) }, 'unhandled error')
    } else if (se.detail !== undefined || se.cause !== undefined) {
      request.log.warn(
        { error: se.code, detail: se.detail, ...(se.cause !== undefined ? { cause: errorFields(se.cause) } : {}) },
        'request failed'
      )
    }
    return sendError(reply, se)
  })
  app.setNotFoundHandler((request, reply) => {
    return sendError(
      reply,
      new ServiceError('not_found', `No route ${request.method} ${request.url.split('?')[0]}.`, 404)
    )
  })
}

/**
 * While the app drains on close, a request arriving on a kept-alive connection gets a 503 in
 * the contract's shape (fastify's own return503OnClosing body is not), with Connection: close
 * so the client reconnects to another replica.
 */
export function shedWhileClosing (app: FastifyInstance): void {
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
  })
  app.addHook('onRequest', (_request, reply, done) => {
    if (!closing) {
      done()
      return
    }
    reply.header('connection', 'close')
    done(new ServiceError('shutting_down', 'This instance is shutting down; retry.', 503))
  })
}
