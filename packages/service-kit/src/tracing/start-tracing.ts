import type { FastifyPluginCallback } from 'fastify'
import { ConfigError, StartupError } from '../env.js'
import { tracesProtocol, tracingEnabled, type TracesProtocol } from './tracing-env.js'

/** Tracing of one service: the fastify plugin to register first, and the flush on close. */
export interface Tracing {
  /** @fastify/otel's plugin: request and handler spans named by route. */
  fastifyPlugin: FastifyPluginCallback
  /** Exports what is buffered and stops; server.ts calls it after the app closed. */
  shutdown: () => Promise<void>
}

/**
 * For a service's server.ts, before anything else is imported: the http instrumentation patches
 * node's http when a module first requires it, so fastify and got must load after this. A
 * StartupError (a bad OTEL_ variable) is one line on stderr and exit 1, as for configuration.
 */
export async function startTracingOrExit (
  service: string,
  env: Record<string, string | undefined>
): Promise<Tracing | null> {
  try {
    return await startTracing(env, service)
  } catch (err) {
    if (!(err instanceof StartupError)) throw err
    process.stderr.write(`${service}: ${err.message}\n`)
    process.exit(1)
  }
}

/** Requests no one wants a trace of: probes and scrapes. */
const UNTRACED = /^\/(livez|readyz|healthz|metrics)(\?|$)/
const isUntraced = (route: { url: string }): boolean => UNTRACED.test(route.url)

/**
 * Starts OpenTelemetry for a service when an OTLP endpoint is configured (tracing-env.ts), and
 * returns null (having loaded nothing of the SDK) when not. The official Node SDK reads the
 * standard OTEL_* variables itself: the endpoint, headers and timeout, OTEL_SERVICE_NAME and
 * OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, OTEL_PROPAGATORS (W3C tracecontext and baggage by
 * default), OTEL_BSP_*. Traces only: the services' metrics are Prometheus's, their logs pino's.
 * Incoming and outgoing HTTP (got, and so the broker's calls to WeChat) are traced by the http
 * instrumentation, which also carries `traceparent` on; fastify's routes by @fastify/otel; every
 * span passes the scrubber (scrub-spans.ts) before it is exported.
 */
export async function startTracing (
  env: Record<string, string | undefined>,
  serviceName: string
): Promise<Tracing | null> {
  if (!tracingEnabled(env)) return null
  let protocol: TracesProtocol
  try {
    protocol = tracesProtocol(env)
  } catch (err) {
    // One line at startup (startOrExit), as for the service's own variables.
    throw err instanceof ConfigError ? new StartupError(err.message) : err
  }
  const [{ NodeSDK }, { HttpInstrumentation }, { FastifyOtelInstrumentation }, { BatchSpanProcessor }] =
    await Promise.all([
      import('@opentelemetry/sdk-node'),
      import('@opentelemetry/instrumentation-http'),
      import('@fastify/otel'),
      import('@opentelemetry/sdk-trace-base')
    ])
  const { ScrubbingSpanProcessor } = await import('./scrub-spans.js')
  const { OTLPTraceExporter } =
    protocol === 'http/json'
      ? await import('@opentelemetry/exporter-trace-otlp-http')
      : await import('@opentelemetry/exporter-trace-otlp-proto')
  // One server span a request, @fastify/otel's (it takes the caller's traceparent itself), named
  // by the route; no handler or hook spans (named by the whole plugin chain, they would outnumber
  // the rest): the login's own steps say where its time went. Fewer spans, less CPU a request.
  const fastifyOtel = new FastifyOtelInstrumentation({
    instrumentHooks: false,
    instrumentHandler: false,
    ignorePaths: isUntraced,
    requestHook: (span, request) => {
      span.updateName(`${request.method} ${request.routeOptions.url ?? ''}`.trim())
    }
  })
  const sdk = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME ?? serviceName,
    spanProcessors: [new ScrubbingSpanProcessor(), new BatchSpanProcessor(new OTLPTraceExporter())],
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [
      // Outgoing calls only (got: the broker, WeChat), which carry the traceparent on; incoming
      // requests are @fastify/otel's.
      new HttpInstrumentation({ disableIncomingRequestInstrumentation: true }),
      fastifyOtel
    ]
  })
  sdk.start()
  return { fastifyPlugin: fastifyOtel.plugin(), shutdown: async () => await sdk.shutdown() }
}
