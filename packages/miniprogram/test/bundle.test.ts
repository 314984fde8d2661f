import t from 'tap'
import { readFileSync } from 'node:fs'
import vm from 'node:vm'
import type * as Client from '../src/index.js'
import { fakeWx, miniStack } from './stack.js'

// miniprogram_dist/index.js is what runs on the phone: no Node built-ins, no fetch, no process.
// Here it runs in a context that has only what the mini-program runtime gives a file: `wx`,
// timers, console, and its CommonJS module/exports.

const source = readFileSync(new URL('../miniprogram_dist/index.js', import.meta.url), 'utf8')

t.test('the bundle names nothing the mini-program runtime lacks', async t => {
  const code = source.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '')
  for (const name of ['require(', 'process.', 'Buffer', 'fetch(', 'globalThis', 'import(']) t.notOk(code.includes(name), `no ${name}`)
  t.notMatch(code, /\basync function\b|=>\s*\{?\s*await\b/, 'ES2015: no async functions (compiled to generators)')
})

t.test('it logs in and calls the API from a vm context with only wx, timers and console', async t => {
  const stack = await miniStack(t)
  const wx = fakeWx(stack, 'o-vm')
  const module = { exports: {} as Record<string, unknown> }
  const context = vm.createContext({ wx, setTimeout, clearTimeout, setInterval, clearInterval, console })
  vm.runInContext(`(function (module, exports) {\n${source}\n})`, context)(module, module.exports)
  const { createLoginClient } = module.exports as unknown as typeof Client
  // No `api`: the runtime's own global wx.
  const client = createLoginClient({ baseUrl: stack.loginUrl, retry: { baseDelayMs: 20 } })
  const answer = await client.login()
  t.equal(answer.user.openid, 'o-vm')
  t.equal((await client.request({ url: '/api/user/me' })).statusCode, 200)
  t.ok(wx.storage.has('wxlogin:session'), 'the session went to wx.setStorageSync')
})
