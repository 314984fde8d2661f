import fp from 'fastify-plugin'
import type { Upstream } from '@wxlogin/service-kit'
import type { BrokerConfig, WechatAppConfig } from '../config.js'
import { ticketMetrics, tokenMetrics, type BrokerMetrics } from '../metrics.js'
import { TokenManager, type Credential, type ServedToken } from '../credentials/token-manager.js'
import { TOKEN_REJECTED, WechatClient, type TicketType } from '../wechat/wechat-client.js'
import type { CredentialKind } from './token-store.js'
import { PhoneCalls } from '../wechat/phone-calls.js'

declare module 'fastify' {
  interface FastifyInstance {
    tokens: TokenManager
    tickets: Record<TicketType, TokenManager>
    wechat: WechatClient
    /** getuserphonenumber and the usage of paid capabilities. */
    phoneCalls: PhoneCalls
    /**
     * Runs a WeChat call that carries the app's access_token. When WeChat rejects the token
     * (40001, 42001, 40014), the token goes through compare-and-refresh and the call runs once more.
     */
    withAccessToken: <T>(appid: string, call: (accessToken: string) => Promise<T>) => Promise<T>
  }
}

export interface TokensPluginOptions {
  config: BrokerConfig
  upstream: Upstream
  metrics: BrokerMetrics
  backoffBaseMs?: number | undefined
}

export const TICKET_TYPES: readonly TicketType[] = ['jsapi', 'wx_card']

export default fp<TokensPluginOptions>(
  async (app, { config, upstream, metrics, backoffBaseMs }) => {
    const wechat = new WechatClient({
      upstream,
      metrics: metrics.wechat,
      baseUrl: config.wechatBaseUrl,
      timeoutMs: config.upstreamTimeoutMs,
      retryBudgetMs: config.retryBudgetMs,
      countTokenCall: (appid, api, force) => {
        metrics.upstreamTokenCalls.inc({ appid, api, force: String(force) })
      },
      backoffBaseMs
    })

    const manager = (kind: CredentialKind, credential: Omit<Credential, 'kind'>): TokenManager =>
      new TokenManager({
        apps: config.apps,
        credential: { kind, ...credential },
        store: app.credentialStores[kind],
        lock: app.refreshLock,
        metrics,
        log: app.log,
        refreshAheadMs: config.refreshAheadSeconds * 1000,
        failureMemoryMs: config.failureMemoryMs,
        forceRefreshIntervalMs: config.forceRefreshIntervalMs,
        invalidationBudget: config.invalidationBudget,
        clients: config.clients,
        waitTimeoutMs: config.lockTtlMs + config.retryBudgetMs + config.upstreamTimeoutMs
      })

    const tokens = manager('token', {
      fetch: async (wxApp: WechatAppConfig, force: boolean) => await wechat.fetchToken(wxApp, force),
      metrics: tokenMetrics(metrics)
    })

    async function withAccessToken<T> (appid: string, call: (accessToken: string) => Promise<T>): Promise<T> {
      let served: ServedToken = await tokens.getToken(appid)
      try {
        return await call(served.record.token)
      } catch (err) {
        const errcode = (err as { wechatErrcode?: number }).wechatErrcode
        if (errcode === undefined || !TOKEN_REJECTED.has(errcode)) throw err
        served = await tokens.invalidate(appid, served.record.token)
        return await call(served.record.token)
      }
    }

    // A ticket is fetched with the access_token, on the same single-flight, locked, refresh-ahead path.
    const tickets = Object.fromEntries(
      TICKET_TYPES.map(type => [
        type,
        manager(`ticket:${type}`, {
          fetch: async (wxApp: WechatAppConfig) =>
            await withAccessToken(wxApp.appid, async token => await wechat.fetchTicket(token, type)),
          metrics: ticketMetrics(metrics, type)
        })
      ])
    ) as Record<TicketType, TokenManager>

    app.decorate('wechat', wechat)
    app.decorate('phoneCalls', new PhoneCalls(wechat))
    app.decorate('tokens', tokens)
    app.decorate('tickets', tickets)
    app.decorate('withAccessToken', withAccessToken)
    // Before the store closes (onClose hooks run in reverse order of registration).
    app.addHook('onClose', async () => {
      await Promise.all(
        [tokens, ...Object.values(tickets)].map(async m => {
          await m.drain()
        })
      )
    })
  },
  { name: 'tokens', dependencies: ['token-store'] }
)
