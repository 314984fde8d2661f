import type { FastifyInstance } from 'fastify'

/**
 * A readiness check: ok; ok but degraded (the service still serves, say from memory); or
 * failing, with a short reason naming what fails (never a secret).
 */
export type ReadyCheck = () => Promise<{ ok: true, degraded?: string } | { ok: false, reason: string }>

interface Readiness {
  results: Record<string, string>
  failing: string[]
  degraded: boolean
}

/**
 * /healthz: the process runs. /readyz: 200 while the service can serve (degraded or not), 503
 * naming the failing check when it cannot. The checks' answer is reused for `cacheMs`: /readyz
 * is on the public port, and each check may cost a call to another service.
 */
export function registerHealthRoutes (app: FastifyInstance, checks: Record<string, ReadyCheck>, cacheMs = 1000): void {
  let last: { at: number, readiness: Promise<Readiness> } | undefined
  const readiness = async (): Promise<Readiness> => {
    if (last === undefined || Date.now() - last.at >= cacheMs) last = { at: Date.now(), readiness: runChecks(checks) }
    return await last.readiness
  }
  app.get('/healthz', { logLevel: 'warn' }, async () => ({ status: 'ok' }))
  app.get('/readyz', { logLevel: 'warn' }, async (_request, reply) => {
    const { results, failing, degraded } = await readiness()
    if (failing.length === 0) return { status: degraded ? 'degraded' : 'ready', checks: results }
    return reply.code(503).send({
      error: 'not_ready',
      message: `Not ready: ${[...failing]
        .sort()
        .map(k => `${k} (${results[k]})`)
        .join(', ')}.`,
      checks: results
    })
  })
}

async function runChecks (checks: Record<string, ReadyCheck>): Promise<Readiness> {
  const results: Record<string, string> = {}
  const failing: string[] = []
  let degraded = false
  await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      try {
        const r = await check()
        if (!r.ok) {
          results[name] = r.reason
          failing.push(name)
        } else if (r.degraded !== undefined) {
          results[name] = `degraded: ${r.degraded}`
          degraded = true
        } else {
          results[name] = 'ok'
        }
      } catch {
        results[name] = 'check failed'
        failing.push(name)
      }
    })
  )
  return { results, failing, degraded }
}
