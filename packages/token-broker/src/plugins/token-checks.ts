import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import type { BrokerConfig } from '../config.js'
import type { BrokerMetrics } from '../metrics.js'
import { ReaskDetector } from '../sdk-compat/reask.js'
import type { ServedToken } from '../credentials/token-manager.js'
import { TokenVerifier, type Verdict } from '../sdk-compat/token-verifier.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The token to answer a token request with. When this caller was served the same token a
     * moment ago (an SDK re-asking after a 40001), WeChat is asked whether it still works, and a
     * refused one goes through compare-and-refresh (once cluster-wide).
     */
    recheckServed: (request: FastifyRequest, appid: string, served: ServedToken) => Promise<ServedToken>
    /** Asks WeChat whether `token` works: one check per app at a time and per floor, cluster-wide. */
    verifyToken: (appid: string, token: string) => Promise<Verdict>
  }
}

export default fp<{ config: BrokerConfig, metrics: BrokerMetrics }>(
  async (app, { config, metrics }) => {
    const verifier = new TokenVerifier({
      store: app.credentialStores.token,
      check: async (_appid, token) => await app.wechat.checkToken(token),
      floorMs: config.verifyFloorMs,
      waitMs: config.upstreamTimeoutMs + 1000,
      metrics: metrics.verifications,
      log: app.log
    })
    const reasks = new ReaskDetector(config.reaskWindowMs)
    const verifyToken = async (appid: string, token: string): Promise<Verdict> => await verifier.verify(appid, token)

    app.decorate('verifyToken', verifyToken)
    app.decorate(
      'recheckServed',
      async (request: FastifyRequest, appid: string, served: ServedToken): Promise<ServedToken> => {
        const client = request.brokerClient?.name
        const caller = `${client ?? ''}\0${request.ip}`
        if (!reasks.served(appid, caller, served.record.token)) return served
        if ((await verifyToken(appid, served.record.token)) !== 'invalid') return served
        const fresh = await app.tokens.invalidate(appid, served.record.token, client)
        reasks.served(appid, caller, fresh.record.token)
        return fresh
      }
    )
  },
  { name: 'token-checks', dependencies: ['tokens', 'token-store'] }
)
