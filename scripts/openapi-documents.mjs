// Builds each service in memory mode with placeholder configuration (no listener, no network)
// and returns the OpenAPI document @fastify/swagger derives from its route schemas.
import { buildApp as buildBroker, loadConfig as brokerConfig } from '../packages/token-broker/dist/app.js'
import { buildApp as buildLogin, loadConfig as loginConfig } from '../packages/login-api/dist/app.js'
import { generateKeyPairSync } from 'node:crypto'

const placeholder = { LOG_LEVEL: 'silent' }

export async function openapiDocuments () {
  const broker = await buildBroker(brokerConfig({
    ...placeholder,
    WECHAT_APPID: 'wx0000000000000000',
    WECHAT_SECRET: 'placeholder',
    BROKER_CLIENTS: JSON.stringify([{ name: 'docs', token: 'placeholder-client-token-0123456789abcdef', apps: ['*'] }])
  }), { logger: false })
  const login = await buildLogin(loginConfig({
    ...placeholder,
    WECHAT_APPID: 'wx0000000000000000',
    BROKER_URL: 'http://127.0.0.1:3001',
    BROKER_TOKEN: 'placeholder-client-token-0123456789abcdef',
    // SESSION_FORMAT=jwt adds the refresh and JWKS routes; a throwaway key (none reaches the document).
    SESSION_FORMAT: 'jwt',
    SESSION_SIGNING_KEYS: JSON.stringify({ keys: [{ ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }), kid: 'docs' }] })
  }), { logger: false })
  const docs = {}
  for (const [name, app] of [['token-broker', broker], ['login-api', login]]) {
    await app.ready()
    docs[name] = app.swagger()
    await app.close()
  }
  return docs
}
