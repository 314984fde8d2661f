import t from 'tap'
import nock from 'nock'
import { createUpstreamGot } from '../src/upstream-got.js'

t.test('createUpstreamGot: HTTPS goes through https.request (and nock still sees it)', async t => {
  nock.disableNetConnect()
  t.teardown(() => { nock.cleanAll(); nock.enableNetConnect() })
  const scope = nock('https://api.weixin.qq.com')
    .get('/sns/jscode2session')
    .query({ appid: 'wx1', js_code: 'c' })
    .reply(200, { openid: 'o2' })
  const body = await createUpstreamGot()('https://api.weixin.qq.com/sns/jscode2session', { searchParams: { appid: 'wx1', js_code: 'c' } }).json()
  t.same(body, { openid: 'o2' })
  t.ok(scope.isDone())
})
