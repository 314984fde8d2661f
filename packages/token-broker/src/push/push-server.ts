import Fastify, { type FastifyInstance } from 'fastify'
import type { Counter, Gauge } from 'prom-client'
import type { PushConfig } from './push-config.js'
import { decryptPush, PushDecryptError, pushSignature, signatureMatches } from './push-crypto.js'
import { parseBody, toPushMessage } from './push-message.js'
import type { WechatEventStore } from './event-store.js'

/** A push body larger than this is not WeChat's. */
const BODY_LIMIT = 64 * 1024
/** How far a push's timestamp may be from our clock: WeChat resends within seconds. */
const TIMESTAMP_WINDOW_S = 300
/** WeChat waits 5 s for an answer: the store write gives up before, and WeChat resends. */
const STORE_DEADLINE_MS = 4000

interface PushQuery {
  signature?: string
  timestamp?: string
  nonce?: string
  echostr?: string
  openid?: string
  encrypt_type?: string
  msg_signature?: string
}

export interface PushServerOptions {
  push: PushConfig
  store: WechatEventStore
  metrics: Counter<'appid' | 'result'>
  log: FastifyInstance['log']
  /** The phone-billing gauges, set from charge_service_quota_notify as the usage poll sets them. */
  quota?: { used: Gauge<'appid' | 'spu'>, total: Gauge<'appid' | 'spu'> }
  now?: () => number
}

/** A paid capability's quota as WeChat pushes it (charge_service_quota_notify), when it says one. */
export function quotaOf (m: Record<string, unknown>): { spu: string, used: number, total: number } | null {
  const pick = (...names: string[]): unknown => names.map(n => m[n]).find(v => v !== undefined)
  const spu = String(pick('SpuId', 'spu_id', 'spuId') ?? '')
  const used = Number(pick('TotalUsedQuota', 'total_used_quota', 'totalUsedQuota'))
  const total = Number(pick('TotalQuota', 'total_quota', 'totalQuota'))
  return /^\d{1,20}$/.test(spu) && Number.isFinite(used) && Number.isFinite(total) ? { spu, used, total } : null
}

const within = async <T>(op: Promise<T>, ms: number): Promise<T> =>
  await Promise.race([
    op,
    new Promise<never>((_resolve, reject) =>
      setTimeout(() => reject(new Error('the store did not answer in time')), ms).unref()
    )
  ])

/**
 * The listener WeChat pushes to (PUSH_PORT): it faces the internet, so it serves only
 * GET|POST /wechat/push/{appid}. GET answers the console's URL verification; POST takes a push in
 * plaintext, compatible or safe mode, XML or JSON, checks its signature (constant time) and
 * timestamp, decrypts it (the appid inside checked) and answers `success` only once it is stored
 * durably: WeChat resends otherwise, and a resend of a stored push is stored once.
 */
export function buildPushServer (opts: PushServerOptions): FastifyInstance {
  const { push, store, metrics } = opts
  const now = opts.now ?? Date.now
  const app = Fastify({ loggerInstance: opts.log.child({ listener: 'push' }), bodyLimit: BODY_LIMIT })
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
    done(null, body)
  })

  const refuse = (
    appid: string,
    result: 'bad_signature' | 'bad_request',
    status: number
  ): { status: number, body: string } => {
    metrics.inc({ appid, result })
    return { status, body: result }
  }

  app.route<{ Params: { appid: string }, Querystring: PushQuery, Body: string | undefined }>({
    method: ['GET', 'POST'],
    url: '/wechat/push/:appid',
    handler: async (request, reply) => {
      reply.type('text/plain; charset=utf-8')
      const { appid } = request.params
      const settings = push.apps.get(appid)
      if (settings === undefined) return await reply.code(404).send('unknown app')
      const q = request.query
      const timestamp = q.timestamp ?? ''
      const nonce = q.nonce ?? ''
      if (!/^\d{1,12}$/.test(timestamp) || nonce === '' || nonce.length > 64) {
        const r = refuse(appid, 'bad_request', 400)
        return await reply.code(r.status).send(r.body)
      }
      const plainSigned = signatureMatches(pushSignature(settings.token, timestamp, nonce), q.signature)
      if (request.method === 'GET') {
        // The console's URL verification: echostr back, only to a caller who knows the token.
        if (!plainSigned || typeof q.echostr !== 'string') {
          const r = refuse(appid, 'bad_signature', 401)
          return await reply.code(r.status).send(r.body)
        }
        return q.echostr
      }
      if (Math.abs(now() / 1000 - Number(timestamp)) > TIMESTAMP_WINDOW_S) {
        const r = refuse(appid, 'bad_request', 400)
        return await reply.code(r.status).send(r.body)
      }
      const body = parseBody(typeof request.body === 'string' ? request.body : '')
      if (body === null) {
        const r = refuse(appid, 'bad_request', 400)
        return await reply.code(r.status).send(r.body)
      }
      let message: Record<string, unknown> | null = body
      if (q.encrypt_type === 'aes') {
        // Compatible and safe mode: the ciphertext is what counts, signed with it.
        const encrypted = body.Encrypt
        if (settings.aesKey === undefined || typeof encrypted !== 'string') {
          const r = refuse(appid, 'bad_request', 400)
          return await reply.code(r.status).send(r.body)
        }
        if (!signatureMatches(pushSignature(settings.token, timestamp, nonce, encrypted), q.msg_signature)) {
          const r = refuse(appid, 'bad_signature', 401)
          return await reply.code(r.status).send(r.body)
        }
        try {
          message = parseBody(decryptPush(settings.aesKey, encrypted, appid))
        } catch (err) {
          if (!(err instanceof PushDecryptError)) throw err
          request.log.warn({ appid, reason: err.message }, 'a push that does not decrypt')
          message = null
        }
      } else if (!plainSigned) {
        const r = refuse(appid, 'bad_signature', 401)
        return await reply.code(r.status).send(r.body)
      }
      const parsed = message === null ? null : toPushMessage(appid, message, q.openid)
      if (parsed === null) {
        const r = refuse(appid, 'bad_request', 400)
        return await reply.code(r.status).send(r.body)
      }
      let result: 'stored' | 'duplicate'
      try {
        result = await within(store.add(parsed), STORE_DEADLINE_MS)
      } catch (err) {
        metrics.inc({ appid, result: 'store_unavailable' })
        request.log.warn(
          { appid, event: parsed.event, err: (err as Error).message },
          'push not stored: WeChat will resend'
        )
        return await reply.code(503).send('not stored')
      }
      metrics.inc({ appid, result })
      const quota = parsed.event === 'charge_service_quota_notify' ? quotaOf(parsed.message) : null
      if (quota !== null && opts.quota !== undefined) {
        opts.quota.used.set({ appid, spu: quota.spu }, quota.used)
        opts.quota.total.set({ appid, spu: quota.spu }, quota.total)
      }
      request.log.info({ appid, event: parsed.event, result }, 'push received')
      return 'success'
    }
  })
  return app
}
