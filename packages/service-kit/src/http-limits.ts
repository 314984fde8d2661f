import type http from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Socket } from 'node:net'
import type { EnvReader } from './env.js'
import { ServiceError } from './errors.js'

export interface HttpLimits {
  /** Time a client has to send its headers and body; a stalled request is then answered 408 and closed. */
  requestTimeoutMs: number
}

export function readHttpLimits (r: EnvReader): HttpLimits {
  return { requestTimeoutMs: r.int('REQUEST_TIMEOUT_SECONDS', 10, { min: 1, max: 300 }) * 1000 }
}

/**
 * Node's server options that enforce the request bound to the second: Node checks its header
 * and request timeouts only every `connectionsCheckingInterval` (30 s by default), so a stalled
 * body held a socket for up to a minute past the limit; 5,000 such sockets were 75 MB.
 */
export function boundedServerOptions (limits: HttpLimits): http.ServerOptions {
  return {
    headersTimeout: limits.requestTimeoutMs,
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.requestTimeoutMs / 4)))
  }
}

const body = (error: string, message: string): string => JSON.stringify({ error, message })

/**
 * What Node's parser refuses (a malformed request line or header, a request too slow to arrive)
 * answered in the contract's error shape; nothing of the request is echoed or logged.
 */
export function clientErrorHandler (this: FastifyInstance, err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
  const [status, text, json] = timeout
    ? [408, 'Request Timeout', body('request_timeout', 'The request did not arrive in time.')]
    : err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', body('headers_too_large', 'The request headers are too large.')]
      : [400, 'Bad Request', body('bad_request', 'The request could not be parsed as HTTP.')]
  this.log.info({ errCode: err.code, status }, 'client error: request refused by the HTTP parser')
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ` +
      `${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`
  )
}

/** Fastify's own refusals before routing (a URL that does not decode): the contract shape, no echo. */
export function frameworkErrors (error: { code?: string }, request: FastifyRequest, reply: FastifyReply): void {
  const se =
    error.code === 'FST_ERR_BAD_URL'
      ? new ServiceError('bad_url', 'The request URL is malformed.', 400)
      : new ServiceError('bad_request', 'The request could not be routed.', 400)
  request.log.info(
    { method: request.method, errCode: error.code, status: se.statusCode },
    'request refused before routing'
  )
  reply.code(se.statusCode).type('application/json; charset=utf-8').send(se.toJSON())
}
