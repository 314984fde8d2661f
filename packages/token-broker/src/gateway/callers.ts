import { timingSafeEqual } from 'node:crypto'
import { sha256Hex } from '@wxlogin/service-kit'
import type { BrokerClientConfig } from '../config.js'
import type { TokenManager } from '../credentials/token-manager.js'
import { allowedBy } from './forward.js'
import { SURROGATE_PREFIX, type SurrogateTokens } from './surrogates.js'

/** Who presented an access_token: its app, and its client when the token names one (a surrogate). */
export type Caller = { appid: string, client: BrokerClientConfig | null } | 'expired' | null

const sameToken = (a: string, b: string): boolean =>
  timingSafeEqual(Buffer.from(sha256Hex(a), 'hex'), Buffer.from(sha256Hex(b), 'hex'))

/**
 * The access_tokens the broker handed out, as WeChat-shaped routes (the gateway's, getticket)
 * receive them back: a surrogate names its app and client; a real token only its app, while it
 * is that app's current token (one the broker replaced gets WeChat's own 40001, and the SDK asks
 * the token URL again).
 */
export class TokenCallers {
  constructor (
    private readonly tokens: TokenManager,
    private readonly appids: string[],
    private readonly surrogates: SurrogateTokens
  ) {}

  async of (token: string): Promise<Caller> {
    if (token.startsWith(SURROGATE_PREFIX)) return this.surrogates.open(token)
    let found: string | undefined
    for (const appid of this.appids) {
      const current = await this.tokens.peek(appid)
      // Every app is compared, found or not: the time taken says nothing about which.
      if (
        current !== null &&
        current.expiresAt > Date.now() &&
        sameToken(current.token, token) &&
        found === undefined
      ) {
        found = appid
      }
    }
    return found === undefined ? null : { appid: found, client: null }
  }

  /**
   * The client a real token's call is counted and bounded as: a real token names the app, not
   * the client, so it is the first client in BROKER_CLIENTS holding real tokens for the app whose
   * `apis` allow the path (docs/gateway.md: surrogates tell clients apart).
   */
  static realTokenClient (clients: BrokerClientConfig[], appid: string, path: string): BrokerClientConfig | undefined {
    return clients.find(
      c =>
        c.tokenForm !== 'surrogate' &&
        (c.apps.includes('*') || c.apps.includes(appid)) &&
        allowedBy(c, path) !== undefined
    )
  }
}
