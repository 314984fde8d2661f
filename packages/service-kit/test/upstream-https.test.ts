import t from 'tap'
import nock from 'nock'
import { createUpstreamGot } from '../src/upstream-got.js'
import { createUpstream } from '../src/upstream-http.js'

// Both of the services' HTTP clients (got for the gateway's streams, upstream-http for the JSON
// calls): HTTPS goes through https.request, and nock still sees it.
const calls = {
  got: async (url: string, searchParams: Record<string, string>) =>
    await createUpstreamGot()(url, { searchParams }).json(),
  'upstream-http': async (url: string, searchParams: Record<string, string>) =>
    JSON.parse((await createUpstream()({ method: 'GET', url, searchParams, timeoutMs: 2000 })).body) as unknown
}

for (const [name, call] of Object.entries(calls)) {
  t.test(`${name}: HTTPS goes through https.request (and nock still sees it)`, async t => {
    nock.disableNetConnect()
    t.teardown(() => { nock.cleanAll(); nock.enableNetConnect() })
    const scope = nock('https://api.weixin.qq.com')
      .get('/sns/jscode2session')
      .query({ appid: 'wx1', js_code: 'c' })
      .reply(200, { openid: 'o2' })
    t.same(await call('https://api.weixin.qq.com/sns/jscode2session', { appid: 'wx1', js_code: 'c' }), { openid: 'o2' })
    t.ok(scope.isDone())
  })
}
