import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Validator } from '@seriousme/openapi-schema-validator'
import { root } from './helpers.js'

t.test('docs/openapi is current and valid OpenAPI 3', async t => {
  // @ts-expect-error: a plain .mjs module of this repository's scripts
  const { openapiDocuments } = await import('../scripts/openapi-documents.mjs') as { openapiDocuments: () => Promise<Record<string, object>> }
  const docs = await openapiDocuments()
  t.same(Object.keys(docs).sort(), ['login-api', 'token-broker'])
  for (const [name, doc] of Object.entries(docs)) {
    const committed = JSON.parse(readFileSync(join(root, 'docs/openapi', `${name}.json`), 'utf8')) as object
    t.same(committed, doc, `docs/openapi/${name}.json is current (run "pnpm openapi" to regenerate)`)
    const validator = new Validator()
    const result = await validator.validate(committed as Parameters<Validator['validate']>[0])
    t.ok(result.valid, `docs/openapi/${name}.json is valid: ${JSON.stringify(result.errors ?? '')}`)
    t.equal(validator.version, '3.0', 'OpenAPI 3.0')
  }
  const broker = JSON.parse(readFileSync(join(root, 'docs/openapi/token-broker.json'), 'utf8')) as { paths: Record<string, unknown> }
  t.ok(broker.paths['/v1/apps/{appid}/access-token'], 'the broker routes are described')
})

t.test('the broker serves its document on its (internal) port; the login-api does not', async t => {
  const { buildApp: buildBroker, loadConfig: brokerConfig } = await import('@wxlogin/token-broker')
  const { buildApp: buildLogin, loadConfig: loginConfig } = await import('@wxlogin/login-api')
  const broker = await buildBroker(brokerConfig({ LOG_LEVEL: 'silent', WECHAT_APPID: 'wx1', WECHAT_SECRET: 's', BROKER_CLIENTS: '[{"name":"a","token":"0123456789abcdefghijklmnopqrstuvwxyz","apps":["*"]}]' }), { logger: false })
  const login = await buildLogin(loginConfig({ LOG_LEVEL: 'silent', WECHAT_APPID: 'wx1', BROKER_URL: 'http://127.0.0.1:1', BROKER_TOKEN: 'x' }), { logger: false })
  t.teardown(async () => { await broker.close(); await login.close() })
  const doc = await broker.inject('/openapi.json')
  t.equal(doc.statusCode, 200)
  t.equal(doc.json().info.title, 'token-broker')
  for (const path of ['/openapi.json', '/documentation/json', '/docs']) t.equal((await login.inject(path)).statusCode, 404, `login-api ${path}`)
})
