import fp from 'fastify-plugin'
import type { Got } from 'got'
import { createBrokerClient, type BrokerClient } from '@wxlogin/broker-client'
import { PhoneService } from '../phone-service.js'

declare module 'fastify' {
  interface FastifyInstance {
    broker: BrokerClient
    phones: PhoneService
  }
}

export default fp<{ got: Got }>(async (app, { got }) => {
  const config = app.loginConfig
  const broker = createBrokerClient({ baseUrl: config.brokerUrl, token: config.brokerToken, got, timeoutMs: config.brokerTimeoutMs })
  app.decorate('broker', broker)
  app.decorate('phones', new PhoneService({
    got,
    broker,
    baseUrl: config.wechatBaseUrl,
    timeoutMs: config.wechatTimeoutMs,
    metrics: app.loginMetrics.wechat
  }))
}, { name: 'upstreams', dependencies: ['login-context'] })
