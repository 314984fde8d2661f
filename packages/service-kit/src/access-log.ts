import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ConfigError, type EnvReader } from './env.js'

/**
 * What a production operator needs from request logs without paying for a log line per
 * request: every error (5xx at error, 4xx at info) and every slow request (warn), and of the
 * rest only a sample (LOG_ACCESS_SAMPLE_RATE, 0 by default; 1 logs everything).
 */
export interface AccessLogOptions {
  sampleRate: number
  slowMs: number
}

export function readAccessLog (r: EnvReader): AccessLogOptions {
  const raw = r.optionalString('LOG_ACCESS_SAMPLE_RATE')
  let sampleRate = 0
  if (raw !== undefined) {
    sampleRate = Number(raw)
    if (!/^(0|1|0?\.\d+|1\.0+)$/.test(raw) || sampleRate < 0 || sampleRate > 1) {
      throw new ConfigError('LOG_ACCESS_SAMPLE_RATE', 'must be a number from 0 to 1')
    }
  }
  return { sampleRate, slowMs: r.int('LOG_SLOW_REQUEST_MS', 1000, { min: 1, max: 600_000 }) }
}

/**
 * One line per logged request: method, route path (never the query string, which may carry a
 * code), status, time, and the error code the service answered with. No headers, no body.
 */
export function installAccessLog (app: FastifyInstance, opts: AccessLogOptions): void {
  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
    const status = reply.statusCode
    const ms = reply.elapsedTime
    const slow = ms >= opts.slowMs
    if (status < 400 && !slow && (opts.sampleRate === 0 || Math.random() >= opts.sampleRate)) {
      done()
      return
    }
    const line = {
      method: request.method,
      url: request.url.split('?')[0],
      route: request.routeOptions.url,
      statusCode: status,
      responseTimeMs: Math.round(ms * 10) / 10,
      remoteAddress: request.ip
    }
    if (status >= 500) request.log.error(line, 'request failed')
    else if (slow) request.log.warn(line, 'slow request')
    else request.log.info(line, 'request completed')
    done()
  })
}
