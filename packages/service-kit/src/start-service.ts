import type { FastifyInstance } from 'fastify'
import { errorFields } from './error-fields.js'
import { buildMetricsServer } from './metrics.js'

/** Where a service listens: its configuration has these three. */
export interface ListenOptions {
  host: string
  port: number
  metricsPort: number
}

export interface RunningService {
  /** For close-with-grace in server.ts: closes the app (draining it), then the metrics listener. */
  close: (reason: { signal?: string, err?: Error }) => Promise<void>
}

/**
 * Listens on the API port and, on its own listener, the metrics port (never reachable on the
 * public one). Signal handling stays in each server.ts.
 */
/** `ready`: what the "ready" line says of this service (apps, store); nothing secret. */
export async function startService (
  app: FastifyInstance,
  opts: ListenOptions,
  ready: Record<string, unknown>
): Promise<RunningService> {
  const metricsServer = buildMetricsServer(app.registry)
  await app.listen({ host: opts.host, port: opts.port })
  await metricsServer.listen({ host: opts.host, port: opts.metricsPort })
  app.log.info({ ...ready, metricsPort: opts.metricsPort }, 'ready')
  return {
    close: async ({ signal, err }) => {
      if (err !== undefined) app.log.error({ err: errorFields(err) }, 'closing after an uncaught error')
      else app.log.info({ signal }, 'closing')
      await app.close()
      await metricsServer.close()
    }
  }
}
