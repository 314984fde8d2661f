import fp from 'fastify-plugin'
import { createBrokerClient, type BrokerClient } from '@wxlogin/broker-client'
import { PhoneService } from '../login/phone-service.js'

declare module 'fastify' {
  interface FastifyInstance {
    broker: BrokerClient
    phones: PhoneService
  }
}

/** True for a host that never leaves this machine. */
function loopback (host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)
}

export default fp(
  async app => {
    const config = app.loginConfig
    const url = new URL(config.brokerUrl)
    // The link carries this service's client token and every access_token it is given.
    if (url.protocol === 'http:' && !loopback(url.hostname) && !config.brokerAllowHttp) {
      app.log.warn(
        { brokerHost: url.hostname },
        'BROKER_URL is plain http to another host: client tokens and access_tokens cross the network unencrypted; ' +
          'use https, a private link you trust, or set BROKER_ALLOW_HTTP=true to say so'
      )
    }
    const broker = createBrokerClient({
      baseUrl: config.brokerUrl,
      token: config.brokerToken,
      timeoutMs: config.brokerTimeoutMs
    })
    app.decorate('broker', broker)
    app.decorate('phones', new PhoneService(broker))
  },
  { name: 'upstreams', dependencies: ['login-context'] }
)
