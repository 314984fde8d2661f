import type { FastifyBaseLogger } from 'fastify'
import type { Counter } from 'prom-client'

/**
 * Failed client authentications, counted by route and errcode and logged at warn, at most one
 * line per route and errcode every `intervalMs` (with how many were not logged): a caller with a
 * stale token is seen at once, and a flood of them cannot flood the log.
 */
export class AuthFailures {
  private readonly lastLogged = new Map<string, { at: number, suppressed: number }>()

  constructor (
    private readonly counter: Counter<'route' | 'errcode'>,
    private readonly log: FastifyBaseLogger,
    private readonly intervalMs = 10_000
  ) {}

  record (route: string, errcode: string | number, who: { ip: string, client?: string | undefined }): void {
    const code = String(errcode)
    this.counter.inc({ route, errcode: code })
    const key = `${route}\0${code}`
    const now = Date.now()
    const last = this.lastLogged.get(key)
    if (last !== undefined && now - last.at < this.intervalMs) {
      last.suppressed++
      return
    }
    this.lastLogged.set(key, { at: now, suppressed: 0 })
    // Never the token the caller sent: only where it came from, and the client it named if any.
    this.log.warn(
      {
        route,
        errcode: code,
        ip: who.ip,
        ...(who.client !== undefined ? { client: who.client } : {}),
        ...(last !== undefined ? { notLogged: last.suppressed } : {})
      },
      'client authentication failed'
    )
  }
}
