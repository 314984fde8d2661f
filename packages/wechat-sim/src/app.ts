import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import { FaultQueue, type Fault } from './faults.js'
import { APIS, SimState, type Api, type Outcome, type SimOptions } from './state.js'
import { wxError } from './errcodes.js'

export { SimState, FaultQueue }
export type { Api, SimOptions, Fault }

export interface SimulatorOptions extends SimOptions {
  /** Added to every WeChat API call, milliseconds: a stand-in for the Internet's round trip. */
  latencyMs?: number
  logger?: FastifyServerOptions['logger']
}

export interface Simulator {
  app: FastifyInstance
  state: SimState
  faults: FaultQueue
}

/** The prefix of the control API: a path the real WeChat never serves. */
export const CONTROL_PREFIX = '/__sim'

export function createSimulator (options: SimulatorOptions = {}): Simulator {
  const state = new SimState(options)
  const faults = new FaultQueue()
  let latencyMs = options.latencyMs ?? 0
  const app = Fastify({ logger: options.logger ?? false })

  // Latency faults can be long; closing the simulator ends them, so a test process can exit.
  const pauses = new Set<{ timer: NodeJS.Timeout, resolve: () => void }>()
  const delay = async (ms: number): Promise<void> => {
    await new Promise<void>(resolve => {
      const p = { timer: setTimeout(() => { pauses.delete(p); resolve() }, ms), resolve }
      pauses.add(p)
    })
  }
  app.addHook('onClose', async () => {
    for (const p of pauses) { clearTimeout(p.timer); p.resolve() }
    pauses.clear()
  })

  /** Counts the call, applies latency and any queued fault; true when the fault already answered. */
  async function intercept (api: Api, request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    state.calls[api] += 1
    if (latencyMs > 0) await delay(latencyMs)
    const fault = faults.take(api)
    if (fault?.kind === 'latency') await delay(fault.latencyMs)
    // A caller that hung up during the latency never gets an answer: the simulator treats its
    // request as not processed, so a code it carried stays unused (whether WeChat itself does
    // is not documented). Tests use this to see that a caller gave up in time.
    if (request.raw.socket?.destroyed === true) {
      state.abandoned[api] += 1
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

  function answer<T extends object> (outcome: Outcome<T>): object {
    return outcome.ok ? outcome.value : wxError(outcome.errcode)
  }

  /**
   * An error of an API called with an access_token carries a rid, as WeChat's do
   * (`errmsg: "... rid: 6579-..."`), and openapi/rid/get tells what that request sent and got.
   */
  function answerWithRid<T extends object> (request: FastifyRequest, outcome: Outcome<T>, ok: (value: T) => object = v => v): object {
    if (outcome.ok) return ok(outcome.value)
    const body = wxError(outcome.errcode)
    const rid = state.recordRid({
      invoke_time: Math.floor(Date.now() / 1000),
      cost_in_ms: 0,
      request_url: request.url.replace(/^[^?]*\??/, ''),
      request_body: request.body === undefined ? '' : JSON.stringify(request.body),
      response_body: JSON.stringify(body),
      client_ip: request.ip
    })
    return { ...body, errmsg: `${body.errmsg} rid: ${rid}` }
  }

  app.get('/healthz', async () => ({ status: 'ok' }))

  app.get<{ Querystring: Record<string, string | undefined> }>('/cgi-bin/token', async (request, reply) => {
    if (await intercept('token', request, reply)) return reply
    const q = request.query
    return answer(state.classicToken(q.appid ?? '', q.secret ?? '', q.grant_type))
  })

  app.post<{ Body: Record<string, unknown> | undefined }>('/cgi-bin/stable_token', async (request, reply) => {
    if (await intercept('stable_token', request, reply)) return reply
    const b = request.body ?? {}
    const str = (v: unknown): string => typeof v === 'string' ? v : ''
    return answer(state.stableToken(str(b.appid), str(b.secret), typeof b.grant_type === 'string' ? b.grant_type : undefined, b.force_refresh === true))
  })

  app.get<{ Querystring: Record<string, string | undefined> }>('/sns/jscode2session', async (request, reply) => {
    if (await intercept('jscode2session', request, reply)) return reply
    const q = request.query
    return answer(state.code2session(q.appid ?? '', q.secret ?? '', q.js_code, q.grant_type))
  })

  app.post<{ Querystring: Record<string, string | undefined>, Body: Record<string, unknown> | undefined }>('/wxa/business/getuserphonenumber', async (request, reply) => {
    if (await intercept('getuserphonenumber', request, reply)) return reply
    const b = request.body ?? {}
    const outcome = state.phoneNumber(
      request.query.access_token,
      typeof b.code === 'string' ? b.code : undefined,
      typeof b.openid === 'string' ? b.openid : undefined
    )
    return answerWithRid(request, outcome, value => ({ errcode: 0, errmsg: 'ok', phone_info: value }))
  })

  app.get<{ Querystring: Record<string, string | undefined> }>('/cgi-bin/ticket/getticket', async (request, reply) => {
    if (await intercept('getticket', request, reply)) return reply
    return answerWithRid(request, state.ticket(request.query.access_token, request.query.type), v => ({ errcode: 0, errmsg: 'ok', ...v }))
  })

  app.post<{ Querystring: Record<string, string | undefined>, Body: Record<string, unknown> | undefined }>('/cgi-bin/openapi/quota/get', async (request, reply) => {
    if (await intercept('quota_get', request, reply)) return reply
    return answerWithRid(request, state.quota(request.query.access_token, request.body?.cgi_path), v => ({ errcode: 0, errmsg: 'ok', ...v }))
  })

  app.post<{ Querystring: Record<string, string | undefined>, Body: Record<string, unknown> | undefined }>('/cgi-bin/openapi/rid/get', async (request, reply) => {
    if (await intercept('rid_get', request, reply)) return reply
    return answerWithRid(request, state.rid(request.query.access_token, request.body?.rid), v => ({ errcode: 0, errmsg: 'ok', ...v }))
  })

  app.post<{ Body: Record<string, unknown> | undefined }>('/cgi-bin/clear_quota/v2', async (request, reply) => {
    if (await intercept('clear_quota', request, reply)) return reply
    const b = request.body ?? {}
    const outcome = state.clearQuota(typeof b.appid === 'string' ? b.appid : undefined, typeof b.appsecret === 'string' ? b.appsecret : undefined)
    return outcome.ok ? { errcode: 0, errmsg: 'ok' } : wxError(outcome.errcode)
  })

  app.register(async (control) => {
    const firstApp = (): string => {
      const first = state.apps.keys().next()
      if (first.done === true) throw Object.assign(new Error('the simulator has no app'), { statusCode: 400 })
      return first.value
    }

    control.post<{ Body: { appid: string, secret: string } }>('/apps', {
      schema: { body: { type: 'object', required: ['appid', 'secret'], properties: { appid: { type: 'string', minLength: 1 }, secret: { type: 'string', minLength: 1 } } } }
    }, async (request) => {
      state.addApp(request.body.appid, request.body.secret)
      return { appid: request.body.appid }
    })

    // `count` mints that many at once (each for its own openid unless one is given), for load tests.
    control.post<{ Body: { appid?: string, openid?: string, unionid?: string | null, count?: number } | undefined }>('/login-codes', {
      schema: { body: { type: ['object', 'null'], properties: { appid: { type: 'string' }, openid: { type: 'string', minLength: 1 }, unionid: { type: ['string', 'null'] }, count: { type: 'integer', minimum: 1, maximum: 10_000 } } } }
    }, async (request) => {
      const b = request.body ?? {}
      const appid = b.appid ?? firstApp()
      if (b.count === undefined) return state.mintLoginCode(appid, b.openid, b.unionid)
      return { codes: Array.from({ length: b.count }, () => state.mintLoginCode(appid, b.openid, b.unionid)) }
    })

    control.post<{ Body: { appid?: string, phoneNumber: string, countryCode?: string, openid?: string, openids?: string[] } }>('/phone-codes', {
      schema: { body: { type: 'object', required: ['phoneNumber'], properties: { appid: { type: 'string' }, phoneNumber: { type: 'string', pattern: '^[0-9]{4,20}$' }, countryCode: { type: 'string', pattern: '^[0-9]{1,4}$' }, openid: { type: 'string' }, openids: { type: 'array', items: { type: 'string' }, maxItems: 10_000 } } } }
    }, async (request) => {
      const b = request.body
      const appid = b.appid ?? firstApp()
      // `openids` mints one code bound to each, for load tests.
      if (b.openids !== undefined) return { codes: b.openids.map(o => state.mintPhoneCode(appid, b.phoneNumber, b.countryCode, o).code) }
      return state.mintPhoneCode(appid, b.phoneNumber, b.countryCode, b.openid)
    })

    control.get('/calls', async () => ({ ...state.calls, abandoned: { ...state.abandoned } }))

    control.post<{ Body: { api: Api, kind: Fault['kind'], errcode?: number, status?: number, latency_ms?: number, count?: number } }>('/faults', {
      schema: {
        body: {
          type: 'object',
          required: ['api', 'kind'],
          properties: {
            api: { type: 'string', enum: [...APIS] },
            kind: { type: 'string', enum: ['errcode', 'status', 'latency', 'drop'] },
            errcode: { type: 'integer' },
            status: { type: 'integer', minimum: 400, maximum: 599 },
            latency_ms: { type: 'integer', minimum: 0, maximum: 600_000 },
            count: { type: 'integer', minimum: 1, default: 1 }
          }
        }
      }
    }, async (request, reply) => {
      const b = request.body
      let fault: Fault
      if (b.kind === 'errcode') fault = { kind: 'errcode', errcode: b.errcode ?? -1 }
      else if (b.kind === 'status') fault = { kind: 'status', status: b.status ?? 500 }
      else if (b.kind === 'latency') fault = { kind: 'latency', latencyMs: b.latency_ms ?? 1000 }
      else fault = { kind: 'drop' }
      faults.add(b.api, fault, b.count ?? 1)
      return reply.code(201).send({ api: b.api, ...fault, count: b.count ?? 1 })
    })

    control.delete('/faults', async (_request, reply) => {
      faults.clear()
      return reply.code(204).send()
    })

    control.put<{ Body: { latency_ms: number } }>('/latency', {
      schema: { body: { type: 'object', required: ['latency_ms'], properties: { latency_ms: { type: 'integer', minimum: 0, maximum: 60_000 } } } }
    }, async (request) => {
      latencyMs = request.body.latency_ms
      return { latency_ms: latencyMs }
    })

    control.post('/reset', async (_request, reply) => {
      state.reset()
      faults.clear()
      latencyMs = options.latencyMs ?? 0
      return reply.code(204).send()
    })
  }, { prefix: CONTROL_PREFIX })

  return { app, state, faults }
}
