import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { collectDefaultMetrics, Histogram, Registry } from 'prom-client'

/** One registry per app instance, so several apps in one process (tests, benches) never mix. */
export function createRegistry (): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  return registry
}

/** Seconds buckets that fit both a memory hit (~0.1 ms) and a slow WeChat call (seconds). */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** `http_request_duration_seconds{method,route,status_code}`; route is the template, never the raw URL. */
export const httpMetrics = fp<{ registry: Registry }>(
  async (app, { registry }) => {
    const histogram = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration by method, route template and status code.',
      labelNames: ['method', 'route', 'status_code'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry]
    })
    // Bound children per label set: prom-client would otherwise validate and hash the labels on
    // every request, a measurable share of a memory-served token request. The set is small and
    // bounded (methods x route templates x statuses).
    const children = new BoundChildren<{ observe: (v: number) => void }>()
    // A callback hook, not an async one: no promise per request on the hot path.
    app.addHook('onResponse', (request, reply, done) => {
      const route = request.routeOptions.url ?? 'unmatched'
      children
        .get(`${request.method} ${route} ${reply.statusCode}`, () =>
          histogram.labels({ method: request.method, route, status_code: String(reply.statusCode) })
        )
        .observe(reply.elapsedTime / 1000)
      done()
    })
  },
  { name: 'http-metrics' }
)

/**
 * A metric's children bound once per label set (keyed by the caller's own string): prom-client
 * would otherwise validate and hash the labels on every call of a hot path.
 */
export class BoundChildren<C> {
  private readonly children = new Map<string, C>()

  get (key: string, make: () => C): C {
    let child = this.children.get(key)
    if (child === undefined) {
      child = make()
      this.children.set(key, child)
    }
    return child
  }
}

/** The separate metrics listener: never on the public port. */
export function buildMetricsServer (registry: Registry): FastifyInstance {
  const app = Fastify({ logger: false })
  app.get('/metrics', async (_request, reply) => {
    reply.type(registry.contentType)
    return await registry.metrics()
  })
  return app
}
