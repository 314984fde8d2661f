import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { SimContext } from './context.js'
import { wxError } from './errcodes.js'
import type { Api, Outcome } from './state.js'

/** Counts a call, applies latency and a queued fault; true when the fault already answered. */
type Intercept = (api: Api, request: FastifyRequest, reply: FastifyReply) => Promise<boolean>

function interceptor (app: FastifyInstance, sim: SimContext): Intercept {
  // Latency faults can be long; closing the simulator ends them, so a test process can exit.
  const pauses = new Set<{ timer: NodeJS.Timeout, resolve: () => void }>()
  const delay = async (ms: number): Promise<void> => {
    await new Promise<void>(resolve => {
      const p = {
        timer: setTimeout(() => {
          pauses.delete(p)
          resolve()
        }, ms),
        resolve
      }
      pauses.add(p)
    })
  }
  app.addHook('onClose', async () => {
    for (const p of pauses) {
      clearTimeout(p.timer)
      p.resolve()
    }
    pauses.clear()
  })

  /** Counts the call, applies latency and any queued fault; true when the fault already answered. */
  const seen = new WeakSet<object>()
  async function intercept (api: Api, request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    sim.state.calls[api] += 1
    if (!seen.has(request.raw.socket)) {
      seen.add(request.raw.socket)
      sim.state.apiConnections += 1
    }
    if (sim.latency.ms > 0) await delay(sim.latency.ms)
    const fault = sim.faults.take(api)
    if (fault?.kind === 'latency') await delay(fault.latencyMs)
    // A caller that hung up during the latency never gets an answer: the simulator treats its
    // request as not processed, so a code it carried stays unused (whether WeChat itself does
    // is not documented). Tests use this to see that a caller gave up in time.
    if (request.raw.socket?.destroyed === true) {
      sim.state.abandoned[api] += 1
      reply.hijack()
      return true
    }
    if (fault === undefined) return false
    switch (fault.kind) {
      case 'latency':
        return false
      case 'errcode':
        await reply.send(wxError(fault.errcode))
        return true
      case 'status':
        await reply.code(fault.status).type('text/html').send(`<html><body>${fault.status}</body></html>`)
        return true
      case 'drop':
        reply.hijack()
        request.raw.socket.destroy()
        return true
    }
  }
  return intercept
}

/** How an API answers an outcome: WeChat's error body, or with a rid for APIs called with a token. */
function answerers (sim: SimContext): {
  answer: <T extends object>(outcome: Outcome<T>) => object
  answerWithRid: <T extends object>(request: FastifyRequest, outcome: Outcome<T>, ok?: (value: T) => object) => object
} {
  function answer<T extends object> (outcome: Outcome<T>): object {
    return outcome.ok ? outcome.value : wxError(outcome.errcode)
  }

  /**
   * An error of an API called with an access_token carries a rid, as WeChat's do
   * (`errmsg: "... rid: 6579-..."`), and openapi/rid/get tells what that request sent and got.
   */
  function answerWithRid<T extends object> (
    request: FastifyRequest,
    outcome: Outcome<T>,
    ok: (value: T) => object = v => v
  ): object {
    if (outcome.ok) return ok(outcome.value)
    const body = wxError(outcome.errcode)
    const rid = sim.state.recordRid({
      invoke_time: Math.floor(Date.now() / 1000),
      cost_in_ms: 0,
      request_url: request.url.replace(/^[^?]*\??/, ''),
      request_body: request.body === undefined ? '' : JSON.stringify(request.body),
      response_body: JSON.stringify(body),
      client_ip: request.ip
    })
    return { ...body, errmsg: `${body.errmsg} rid: ${rid}` }
  }
  return { answer, answerWithRid }
}

/** WeChat's APIs as the services call them, each through intercept() (latency, faults, counts). */
export default async function wechatRoutes (app: FastifyInstance, { sim }: { sim: SimContext }): Promise<void> {
  const intercept = interceptor(app, sim)
  const { answer, answerWithRid } = answerers(sim)

  app.get('/healthz', async () => ({ status: 'ok' }))

  app.get<{ Querystring: Record<string, string | undefined> }>('/cgi-bin/token', async (request, reply) => {
    if (await intercept('token', request, reply)) return reply
    const q = request.query
    return answer(sim.state.classicToken(q.appid ?? '', q.secret ?? '', q.grant_type))
  })

  app.post<{ Body: Record<string, unknown> | undefined }>('/cgi-bin/stable_token', async (request, reply) => {
    if (await intercept('stable_token', request, reply)) return reply
    const b = request.body ?? {}
    const str = (v: unknown): string => (typeof v === 'string' ? v : '')
    return answer(
      sim.state.stableToken(
        str(b.appid),
        str(b.secret),
        typeof b.grant_type === 'string' ? b.grant_type : undefined,
        b.force_refresh === true
      )
    )
  })

  app.get<{ Querystring: Record<string, string | undefined> }>('/sns/jscode2session', async (request, reply) => {
    if (await intercept('jscode2session', request, reply)) return reply
    const q = request.query
    return answer(sim.state.code2session(q.appid ?? '', q.secret ?? '', q.js_code, q.grant_type))
  })

  app.post<{ Querystring: Record<string, string | undefined>, Body: Record<string, unknown> | undefined }>(
    '/wxa/business/getuserphonenumber',
    async (request, reply) => {
      if (await intercept('getuserphonenumber', request, reply)) return reply
      const b = request.body ?? {}
      const outcome = sim.state.phoneNumber(
        request.query.access_token,
        typeof b.code === 'string' ? b.code : undefined,
        typeof b.openid === 'string' ? b.openid : undefined
      )
      return answerWithRid(request, outcome, value => ({ errcode: 0, errmsg: 'ok', phone_info: value }))
    }
  )

  app.post<{ Querystring: Record<string, string | undefined>, Body: Record<string, unknown> | undefined }>(
    '/wxa/getuserriskrank',
    async (request, reply) => {
      if (await intercept('getuserriskrank', request, reply)) return reply
      const tok = sim.state.checkAccessToken(request.query.access_token)
      const b = request.body ?? {}
      // 47001: a body without the fields WeChat needs.
      const outcome = !tok.ok
        ? tok
        : typeof b.openid !== 'string' || typeof b.client_ip !== 'string' || (b.scene !== 0 && b.scene !== 1)
          ? { ok: false as const, errcode: 47001 }
          : { ok: true as const, value: { risk_rank: sim.state.codes.riskRanks.get(b.openid) ?? 0 } }
      return answerWithRid(request, outcome, v => ({ errcode: 0, errmsg: 'getuserriskrank succ', ...v, unoin_id: 0 }))
    }
  )

  app.get<{ Querystring: Record<string, string | undefined> }>('/wxa/charge/usage/get', async (request, reply) => {
    if (await intercept('charge_usage_get', request, reply)) return reply
    const tok = sim.state.checkAccessToken(request.query.access_token)
    const outcome = tok.ok ? sim.state.charges.usage(tok.value, request.query.spuId) : tok
    return answerWithRid(request, outcome, v => ({ errcode: 0, errmsg: 'ok', ...v }))
  })

  app.get<{ Querystring: Record<string, string | undefined> }>('/cgi-bin/getcallbackip', async (request, reply) => {
    if (await intercept('getcallbackip', request, reply)) return reply
    return answerWithRid(request, sim.state.callbackIp(request.query.access_token), v => v)
  })

  app.get<{ Querystring: Record<string, string | undefined> }>('/cgi-bin/ticket/getticket', async (request, reply) => {
    if (await intercept('getticket', request, reply)) return reply
    return answerWithRid(request, sim.state.ticket(request.query.access_token, request.query.type), v => ({
      errcode: 0,
      errmsg: 'ok',
      ...v
    }))
  })

  app.post<{ Querystring: Record<string, string | undefined>, Body: Record<string, unknown> | undefined }>(
    '/cgi-bin/openapi/quota/get',
    async (request, reply) => {
      if (await intercept('quota_get', request, reply)) return reply
      return answerWithRid(request, sim.state.quota(request.query.access_token, request.body?.cgi_path), v => ({
        errcode: 0,
        errmsg: 'ok',
        ...v
      }))
    }
  )

  app.post<{ Querystring: Record<string, string | undefined>, Body: Record<string, unknown> | undefined }>(
    '/cgi-bin/openapi/rid/get',
    async (request, reply) => {
      if (await intercept('rid_get', request, reply)) return reply
      return answerWithRid(request, sim.state.rid(request.query.access_token, request.body?.rid), v => ({
        errcode: 0,
        errmsg: 'ok',
        ...v
      }))
    }
  )

  app.post<{ Body: Record<string, unknown> | undefined }>('/cgi-bin/clear_quota/v2', async (request, reply) => {
    if (await intercept('clear_quota', request, reply)) return reply
    const b = request.body ?? {}
    const outcome = sim.state.clearQuota(
      typeof b.appid === 'string' ? b.appid : undefined,
      typeof b.appsecret === 'string' ? b.appsecret : undefined
    )
    return outcome.ok ? { errcode: 0, errmsg: 'ok' } : wxError(outcome.errcode)
  })
}
