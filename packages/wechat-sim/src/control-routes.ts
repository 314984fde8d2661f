import type { FastifyInstance } from 'fastify'
import type { Fault } from './faults.js'
import { APIS, type Api } from './state.js'
import type { SimContext } from './context.js'
import { sendPush, type PushRequest } from './push-sender.js'

/** Minting codes and adding apps: what a test or a load generator needs before it logs in. */
async function codeRoutes (app: FastifyInstance, { sim }: { sim: SimContext }): Promise<void> {
  const firstApp = (): string => {
    const first = sim.state.apps.keys().next()
    if (first.done === true) throw Object.assign(new Error('the simulator has no app'), { statusCode: 400 })
    return first.value
  }

  app.post<{ Body: { appid: string, secret: string } }>(
    '/apps',
    {
      schema: {
        body: {
          type: 'object',
          required: ['appid', 'secret'],
          properties: { appid: { type: 'string', minLength: 1 }, secret: { type: 'string', minLength: 1 } }
        }
      }
    },
    async request => {
      sim.state.addApp(request.body.appid, request.body.secret)
      return { appid: request.body.appid }
    }
  )

  // `count` mints that many at once (each for its own openid unless one is given), for load tests.
  app.post<{ Body: { appid?: string, openid?: string, unionid?: string | null, count?: number } | undefined }>(
    '/login-codes',
    {
      schema: {
        body: {
          type: ['object', 'null'],
          properties: {
            appid: { type: 'string' },
            openid: { type: 'string', minLength: 1 },
            unionid: { type: ['string', 'null'] },
            count: { type: 'integer', minimum: 1, maximum: 10_000 }
          }
        }
      }
    },
    async request => {
      const b = request.body ?? {}
      const appid = b.appid ?? firstApp()
      if (b.count === undefined) return sim.state.mintLoginCode(appid, b.openid, b.unionid)
      return { codes: Array.from({ length: b.count }, () => sim.state.mintLoginCode(appid, b.openid, b.unionid)) }
    }
  )

  app.post<{
    Body: { appid?: string, phoneNumber: string, countryCode?: string, openid?: string, openids?: string[] }
  }>(
    '/phone-codes',
    {
      schema: {
        body: {
          type: 'object',
          required: ['phoneNumber'],
          properties: {
            appid: { type: 'string' },
            phoneNumber: { type: 'string', pattern: '^[0-9]{4,20}$' },
            countryCode: { type: 'string', pattern: '^[0-9]{1,4}$' },
            openid: { type: 'string' },
            openids: { type: 'array', items: { type: 'string' }, maxItems: 10_000 }
          }
        }
      }
    },
    async request => {
      const b = request.body
      const appid = b.appid ?? firstApp()
      // `openids` mints one code bound to each, for load tests.
      if (b.openids !== undefined) {
        return { codes: b.openids.map(o => sim.state.mintPhoneCode(appid, b.phoneNumber, b.countryCode, o).code) }
      }
      return sim.state.mintPhoneCode(appid, b.phoneNumber, b.countryCode, b.openid)
    }
  )

  // A push to a server, as WeChat sends one (signed, encrypted, resent while not answered success).
  // What the app's console holds (SIM_APPS' push_* fields) fills what the body leaves out, and an
  // event's usual fields (CreateTime, AppID, MsgType) are filled in when absent.
  app.post<{ Body: Partial<PushRequest> & { message: Record<string, string | number> } }>(
    '/push',
    {
      schema: {
        body: {
          type: 'object',
          required: ['message'],
          properties: {
            url: { type: 'string', pattern: '^https?://' },
            appid: { type: 'string', minLength: 1 },
            token: { type: 'string', minLength: 1 },
            aesKey: { type: 'string', minLength: 43, maxLength: 43 },
            mode: { enum: ['plain', 'compatible', 'safe'] },
            format: { enum: ['xml', 'json'] },
            message: { type: 'object', additionalProperties: { anyOf: [{ type: 'string' }, { type: 'number' }] } },
            resends: { type: 'integer', minimum: 0, maximum: 3 },
            resendAfterMs: { type: 'integer', minimum: 0, maximum: 10_000 }
          }
        }
      }
    },
    async (request, reply) => {
      const b = request.body
      const appid = b.appid ?? firstApp()
      const target = sim.pushTargets.get(appid)
      const url = b.url ?? target?.url
      const token = b.token ?? target?.token
      if (url === undefined || token === undefined) {
        return await reply
          .code(400)
          .send({ error: `no push URL and Token for ${appid}: send them, or set SIM_APPS' push_*` })
      }
      const message = {
        ToUserName: 'gh_simulator',
        FromUserName: 'o_wechat_push_service',
        CreateTime: Math.floor(Date.now() / 1000),
        MsgType: 'event',
        AppID: appid,
        ...b.message
      }
      const aesKey = b.aesKey ?? target?.aesKey
      return await sendPush({
        ...b,
        url,
        appid,
        token,
        ...(aesKey === undefined ? {} : { aesKey }),
        mode: b.mode ?? target?.mode ?? 'safe',
        format: b.format ?? target?.format ?? 'xml',
        message
      })
    }
  )

  // What getuserriskrank answers for an openid (0 lowest to 4 highest).
  app.post<{ Body: { openid: string, rank: number } }>(
    '/risk-ranks',
    {
      schema: {
        body: {
          type: 'object',
          required: ['openid', 'rank'],
          properties: { openid: { type: 'string', minLength: 1 }, rank: { type: 'integer', minimum: 0, maximum: 4 } }
        }
      }
    },
    async request => {
      sim.state.codes.riskRanks.set(request.body.openid, request.body.rank)
      return request.body
    }
  )

  // The quota bought for a paid capability (its spu), as /wxa/charge/usage/get then reports it.
  app.post<{ Body: { spuId: string, total: number } }>(
    '/charge-quota',
    {
      schema: {
        body: {
          type: 'object',
          required: ['spuId', 'total'],
          properties: {
            spuId: { type: 'string', pattern: '^[0-9]{1,20}$' },
            total: { type: 'integer', minimum: 0 }
          }
        }
      }
    },
    async request => {
      sim.state.charges.setTotal(request.body.spuId, request.body.total)
      return request.body
    }
  )
}

/** Faults, latency, call counts and reset: how a test makes WeChat misbehave and checks what reached it. */
async function faultRoutes (app: FastifyInstance, { sim }: { sim: SimContext }): Promise<void> {
  app.post<{ Body: { appid?: string, access_token?: string } | undefined }>(
    '/revoke',
    {
      schema: {
        body: {
          type: ['object', 'null'],
          additionalProperties: false,
          properties: { appid: { type: 'string' }, access_token: { type: 'string' } }
        }
      }
    },
    async request => {
      const b = request.body ?? {}
      return {
        revoked: sim.state.revoke(
          b.appid ?? (b.access_token === undefined ? sim.state.apps.keys().next().value : undefined),
          b.access_token
        )
      }
    }
  )

  app.get('/calls', async () => ({
    ...sim.state.calls,
    abandoned: { ...sim.state.abandoned },
    apiConnections: sim.state.apiConnections,
    reused_codes: { ...sim.state.reusedCodes },
    exchanged_codes: { ...sim.state.exchangedCodes },
    forced_refreshes: sim.state.forcedRefreshes
  }))

  app.post<{
    Body: { api: Api, kind: Fault['kind'], errcode?: number, status?: number, latency_ms?: number, count?: number }
  }>(
    '/faults',
    {
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
    },
    async (request, reply) => {
      const b = request.body
      let fault: Fault
      if (b.kind === 'errcode') fault = { kind: 'errcode', errcode: b.errcode ?? -1 }
      else if (b.kind === 'status') fault = { kind: 'status', status: b.status ?? 500 }
      else if (b.kind === 'latency') fault = { kind: 'latency', latencyMs: b.latency_ms ?? 1000 }
      else fault = { kind: 'drop' }
      sim.faults.add(b.api, fault, b.count ?? 1)
      return reply.code(201).send({ api: b.api, ...fault, count: b.count ?? 1 })
    }
  )

  app.delete('/faults', async (_request, reply) => {
    sim.faults.clear()
    return reply.code(204).send()
  })

  app.put<{ Body: { latency_ms: number } }>(
    '/latency',
    {
      schema: {
        body: {
          type: 'object',
          required: ['latency_ms'],
          properties: { latency_ms: { type: 'integer', minimum: 0, maximum: 60_000 } }
        }
      }
    },
    async request => {
      sim.latency.ms = request.body.latency_ms
      return { latency_ms: sim.latency.ms }
    }
  )

  app.post('/reset', async (_request, reply) => {
    sim.state.reset()
    sim.faults.clear()
    sim.latency.ms = sim.latency.initialMs
    return reply.code(204).send()
  })
}

/** The control API, under a prefix the real WeChat never serves (CONTROL_PREFIX). */
export default async function controlRoutes (app: FastifyInstance, opts: { sim: SimContext }): Promise<void> {
  // Only `sim`: passing `opts` on would repeat the prefix.
  await app.register(codeRoutes, { sim: opts.sim })
  await app.register(faultRoutes, { sim: opts.sim })
}
