import type { FastifyInstance } from 'fastify'

/** A readiness check answers ok, or a short reason naming what fails (never a secret). */
export type ReadyCheck = () => Promise<{ ok: true } | { ok: false, reason: string }>

export function registerHealthRoutes (app: FastifyInstance, checks: Record<string, ReadyCheck>): void {
  app.get('/healthz', { logLevel: 'warn' }, async () => ({ status: 'ok' }))
  app.get('/readyz', { logLevel: 'warn' }, async (_request, reply) => {
    const results: Record<string, string> = {}
    let ready = true
    await Promise.all(Object.entries(checks).map(async ([name, check]) => {
      try {
        const r = await check()
        results[name] = r.ok ? 'ok' : r.reason
        if (!r.ok) ready = false
      } catch {
        results[name] = 'check failed'
        ready = false
      }
    }))
    if (ready) return { status: 'ready', checks: results }
    const failing = Object.keys(results).filter(k => results[k] !== 'ok')
    return reply.code(503).send({
      error: 'not_ready',
      message: `Not ready: ${failing.map(k => `${k} (${results[k]})`).join(', ')}.`,
      checks: results
    })
  })
}
