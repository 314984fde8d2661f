// An answer WeChat gave while the store could not take its note: held in the process, so a retry
// here is answered from it instead of spending the code again (a phone number billed and lost).
import t from 'tap'
import { ServiceError } from '@wxlogin/service-kit'
import { KeptAnswers } from '../src/wechat/kept-answers.js'
import { MemoryTokenStore } from '../src/store/memory-token-store.js'

class FailingNotes extends MemoryTokenStore {
  up = true
  override async note (appid: string, name: string, value: string, ttlMs: number): Promise<void> {
    if (!this.up) throw new Error('store frozen')
    await super.note(appid, name, value, ttlMs)
  }

  override available (): boolean {
    return this.up
  }
}

t.test('a note the store could not take: the retry gets the answer from this process, WeChat is not asked again', async t => {
  const store = new FailingNotes()
  const answers = new KeptAnswers<{ phone: string }>({
    store,
    pendingMs: 1000,
    name: code => `phone:${code}`,
    sealed: true,
    parse: v => v as { phone: string },
    used: () => new ServiceError('invalid_phone_code', 'used', 400),
    keepPatienceMs: 300
  })
  const asker = { appid: 'wx1', client: 'login-api', retryKeySha256: 'a'.repeat(64), openid: 'o-1' }
  let calls = 0
  const wechat = async (): Promise<{ phone: string }> => { calls++; if (calls === 1) store.up = false; return { phone: '13800138000' } }
  const first = await answers.exchange(asker, 'code-1', wechat)
  t.same(first, { answer: { phone: '13800138000' }, kept: false, unkept: true }, 'not noted: the store stayed down past the patience')
  const again = await answers.exchange(asker, 'code-1', wechat)
  t.same(again, { answer: { phone: '13800138000' }, kept: true }, 'the retry is answered from the process')
  t.equal(calls, 1, 'WeChat was asked once')
  await t.rejects(answers.exchange({ ...asker, retryKeySha256: 'b'.repeat(64) }, 'code-1', wechat), { code: 'invalid_phone_code' }, 'another retry key opens nothing')
  t.equal(calls, 1)
})
