import type { Server } from 'node:http'
import Fastify, {
  LogController,
  type FastifyHttpOptions,
  type FastifyInstance,
  type FastifyServerOptions
} from 'fastify'
import type { Registry } from 'prom-client'
import { installErrorHandling, shedWhileClosing } from './errors.js'
import { loggerOptions } from './logger.js'
import { createRegistry, httpMetrics } from './metrics.js'
import { trustFn, type TrustProxy } from './trust-proxy.js'
import { installAccessLog, type AccessLogOptions } from './access-log.js'
import { boundedServerOptions, clientErrorHandler, frameworkErrors, type HttpLimits } from './http-limits.js'
import type { Tracing } from './tracing/start-tracing.js'
import { activeTraceId } from './tracing/spans.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** This app's own metrics registry (never prom-client's global one). */
    registry: Registry
  }
}

export interface ServiceAppOptions {
  name: string
  logLevel: string
  /** Replaces the default logger (tests pass a capture stream). */
  logger?: FastifyServerOptions['logger'] | undefined
  trustProxy?: TrustProxy
  /** Which requests are logged (errors and slow ones always); default: no sampling, 1 s is slow. */
  accessLog?: AccessLogOptions | undefined
  /** REQUEST_TIMEOUT_SECONDS; default 10 s to send headers and body. */
  http?: HttpLimits | undefined
  /** OpenTelemetry, when the service started it (startTracing): routes traced, log lines carry trace_id. */
  tracing?: Tracing | null | undefined
}

export const BODY_LIMIT = 16 * 1024

/**
 * A Fastify instance with what every service here shares: redacting logger, 16 KiB bodies,
 * schemas without type coercion, the contract's error shape (also while draining on close),
 * JSON only (text/plain is a 415), a registry of its own and the HTTP duration histogram.
 */
export async function createServiceApp (opts: ServiceAppOptions): Promise<FastifyInstance> {
  const limits = opts.http ?? { requestTimeoutMs: 10_000 }
  const tracing = opts.tracing ?? null
  const logger = opts.logger ?? loggerOptions(opts.logLevel, opts.name)
  if (tracing !== null && typeof logger === 'object') {
    // A log line (a slow request, an error) leads to its trace: its trace_id is the trace's.
    Object.assign(logger, { mixin: () => ({ trace_id: activeTraceId() }) })
  }
  const app = Fastify({
    logger,
    http: boundedServerOptions(limits),
    clientErrorHandler,
    frameworkErrors,
    // A function: fastify 5 ignores a bare hop count (it fails closed), and `true` would trust
    // the client's own left-most X-Forwarded-For.
    trustProxy: trustFn(opts.trustProxy ?? { kind: 'none' }),
    bodyLimit: BODY_LIMIT,
    requestTimeout: limits.requestTimeoutMs,
    // Fastify's two lines per request would be most of the cost of a memory-served token at
    // the default level: the access log below logs errors, slow requests and a sample.
    logController: new LogController({ disableRequestLogging: true }),
    // shedWhileClosing answers during the drain, in the contract's error shape.
    return503OnClosing: false,
    // A number where a token or code belongs is a client bug to report, not to coerce.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } }
  } satisfies FastifyHttpOptions<Server>)
  // Before any route: @fastify/otel wraps the routes defined after it.
  if (tracing !== null) await app.register(tracing.fastifyPlugin)
  const registry = createRegistry()
  app.decorate('registry', registry)
  installAccessLog(app, opts.accessLog ?? { sampleRate: 0, slowMs: 1000 })
  installErrorHandling(app)
  shedWhileClosing(app)
  app.removeContentTypeParser('text/plain')
  // wx.request sends content-type: application/json on every POST, also without data: a route
  // that takes no body (logout) must accept an empty one. fastify's own parser does the rest
  // (prototype poisoning refused); a route that needs a body still fails its schema.
  const json = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') {
      done(null, undefined)
      return
    }
    json(request, body as string, done)
  })
  await app.register(httpMetrics, { registry })
  return app
}
