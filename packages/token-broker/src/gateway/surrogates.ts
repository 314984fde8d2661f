import { createHmac, timingSafeEqual } from 'node:crypto'
import type { BrokerClientConfig, WechatAppConfig } from '../config.js'

/** Every surrogate starts so: a reader of a log or a leak report tells it from WeChat's tokens. */
export const SURROGATE_PREFIX = 'wxbs1_'

export type Opened = { appid: string, client: BrokerClientConfig } | 'expired' | null

/**
 * Surrogate access_tokens (`"token_form": "surrogate"`): what the WeChat-shaped token routes hand
 * such a client instead of the app's real token. One names its app, its client and its expiry,
 * under an HMAC whose key is derived from the app's secret and bound to the client's token hashes:
 * every broker instance checks it without a store, WeChat refuses it (a leaked one is worthless
 * outside this broker), and it dies with a rotated client token or a replaced appsecret. Issued
 * with the real token's expiry, so SDKs cache and renew it as they would the real one.
 */
export class SurrogateTokens {
  private readonly keys = new Map<string, Buffer>()
  private readonly clients = new Map<string, BrokerClientConfig>()

  constructor (
    apps: WechatAppConfig[],
    clients: BrokerClientConfig[],
    private readonly now: () => number = Date.now
  ) {
    for (const a of apps) {
      this.keys.set(a.appid, createHmac('sha256', a.secret).update('wxlogin surrogate access_token v1').digest())
    }
    for (const c of clients) this.clients.set(c.name, c)
  }

  issue (client: BrokerClientConfig, appid: string, expiresAt: number): string {
    const payload = Buffer.from(JSON.stringify([appid, client.name, Math.floor(expiresAt / 1000)])).toString(
      'base64url'
    )
    return `${SURROGATE_PREFIX}${payload}.${this.mac(appid, client, payload).toString('base64url')}`
  }

  /** The app and client of a surrogate this broker issued; 'expired' past its expiry; null: not one. */
  open (token: string): Opened {
    if (!token.startsWith(SURROGATE_PREFIX) || token.length > 1024) return null
    const [payload, mac] = token.slice(SURROGATE_PREFIX.length).split('.')
    if (payload === undefined || mac === undefined) return null
    let fields: unknown
    try {
      fields = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
    } catch {
      return null
    }
    if (!Array.isArray(fields) || fields.length !== 3) return null
    const [appid, name, exp] = fields as [unknown, unknown, unknown]
    if (typeof appid !== 'string' || typeof name !== 'string' || typeof exp !== 'number') return null
    const client = this.clients.get(name)
    if (client === undefined || !this.keys.has(appid)) return null
    const want = this.mac(appid, client, payload)
    const got = Buffer.from(mac, 'base64url')
    if (got.length !== want.length || !timingSafeEqual(got, want)) return null
    if (exp * 1000 <= this.now()) return 'expired'
    return { appid, client }
  }

  private mac (appid: string, client: BrokerClientConfig, payload: string): Buffer {
    // The client's token hashes are in the MAC: rotating its tokens ends the surrogates they got.
    const hashes = [...(client.tokenHashes ?? []), client.token ?? ''].join(',')
    return createHmac('sha256', this.keys.get(appid) as Buffer)
      .update(`${payload}\n${hashes}`)
      .digest()
  }
}
