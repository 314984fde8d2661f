import t, { type Test } from 'tap'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { JSDOM } from 'jsdom'
import { fakeWx, miniStack, phoneCode } from './stack.js'

// The example mini-program's login page, run by miniprogram-simulate (WeChat's component test
// tool, on jsdom) with `wx` wired to the real stack: the phone button's event goes in, the masked
// phone comes out on the page. The page is loaded as DevTools would after 构建 npm: it requires
// '@wxlogin/miniprogram' from the example's own node_modules (a workspace link to this package).

const require = createRequire(import.meta.url)
const page = fileURLToPath(new URL('../../../examples/miniprogram/pages/login/index', import.meta.url))

// miniprogram-simulate renders into a DOM: jsdom's, as its documentation suggests for Node.
const dom = new JSDOM('<!doctype html><html><body></body></html>')
Object.assign(globalThis, { window: dom.window, document: dom.window.document, Event: dom.window.Event, CustomEvent: dom.window.CustomEvent })
const simulate = require('miniprogram-simulate') as {
  load: (path: string, opts?: object) => string
  render: (id: string) => { attach: (el: unknown) => void, detach: () => void, data: Record<string, unknown>, querySelector: (s: string) => { dispatchEvent: (name: string, opts: object) => void } | undefined, dom: { innerHTML: string } }
  sleep: (ms: number) => Promise<void>
}

async function renderLogin (t: Test, openid: string): Promise<{ comp: ReturnType<typeof simulate.render>, stack: Awaited<ReturnType<typeof miniStack>> }> {
  const stack = await miniStack(t)
  const wx = fakeWx(stack, openid)
  // What the runtime provides a page: wx, and getApp() with app.js's globalData.
  Object.assign(globalThis, { wx, getApp: () => ({ globalData: { baseUrl: stack.loginUrl } }) })
  // A fresh client per test: the example keeps one per mini-program (lib/client.js).
  for (const k of Object.keys(require.cache)) if (k.includes('examples/miniprogram')) Reflect.deleteProperty(require.cache, k)
  const comp = simulate.render(simulate.load(page, { compiler: 'simulate' }))
  comp.attach(document.createElement('parent-wrapper'))
  t.teardown(() => { comp.detach() })
  return { comp, stack }
}

async function settled (comp: ReturnType<typeof simulate.render>): Promise<void> {
  for (let i = 0; i < 200 && comp.data.busy !== false; i++) await simulate.sleep(25)
}

t.test('a new user: logged in first (free), then the phone button; its event logs in and shows the masked phone', async t => {
  const { comp, stack } = await renderLogin(t, 'o-page')
  await settled(comp)
  t.equal(stack.sim.state.calls.jscode2session, 1, 'who the user is, from wx.login alone')
  t.equal(comp.data.needsPhone, true, 'no verified phone: the button is shown')
  const button = comp.querySelector('#phone')
  t.ok(button, 'the phone button is on the page')
  button?.dispatchEvent('getphonenumber', { detail: { errMsg: 'getPhoneNumber:ok', code: await phoneCode(stack, 'o-page', '13812345678') } })
  for (let i = 0; i < 100 && comp.data.phone === ''; i++) await simulate.sleep(50)
  t.equal(comp.data.phone, '138****5678')
  t.match(comp.dom.innerHTML, /138\*\*\*\*5678/, 'rendered')
  t.equal(stack.sim.state.calls.getuserphonenumber, 1)
  t.equal(comp.data.needsPhone, false, 'verified now: the button is gone')
  t.equal(comp.querySelector('#phone'), undefined)
})

t.test('a user whose phone is on file, after a reinstall: never shown the (billed) button again', async t => {
  const { comp, stack } = await renderLogin(t, 'o-back')
  await settled(comp)
  comp.querySelector('#phone')?.dispatchEvent('getphonenumber', { detail: { errMsg: 'getPhoneNumber:ok', code: await phoneCode(stack, 'o-back', '13900001111') } })
  for (let i = 0; i < 100 && comp.data.phone === ''; i++) await simulate.sleep(50)
  t.equal(stack.sim.state.calls.getuserphonenumber, 1)
  // A reinstall: the mini-program's storage is empty, the user is the same.
  const again = fakeWx(stack, 'o-back')
  Object.assign(globalThis, { wx: again })
  for (const k of Object.keys(require.cache)) if (k.includes('examples/miniprogram')) Reflect.deleteProperty(require.cache, k)
  const fresh = simulate.render(simulate.load(page, { compiler: 'simulate' }))
  fresh.attach(document.createElement('parent-wrapper'))
  t.teardown(() => { fresh.detach() })
  await settled(fresh)
  t.equal(again.logins, 1, 'logged in with wx.login alone')
  t.equal(fresh.data.needsPhone, false, 'the phone on file was verified: no button')
  t.equal(fresh.querySelector('#phone'), undefined)
  t.equal(fresh.data.phone, '139****1111', 'the number on file is shown')
  t.equal(stack.sim.state.calls.getuserphonenumber, 1, 'no second billed exchange')
})

t.test('the real-time variant and a refusal: the user is told, and stays logged in without a phone', async t => {
  const { comp, stack } = await renderLogin(t, 'o-refuses')
  await settled(comp)
  comp.querySelector('#realtime')?.dispatchEvent('getrealtimephonenumber', { detail: { errMsg: 'getRealtimePhoneNumber:fail user deny' } })
  await simulate.sleep(20)
  t.match(String(comp.data.error), /没有授权手机号/)
  t.equal(stack.sim.state.calls.getuserphonenumber, 0, 'nothing was billed')
  comp.querySelector('#realtime')?.dispatchEvent('getrealtimephonenumber', { detail: { errMsg: 'getRealtimePhoneNumber:fail no quota', errno: 1400001 } })
  await simulate.sleep(20)
  t.match(String(comp.data.error), /暂不可用/, 'no quota: its own message')
  comp.querySelector('#plain')?.dispatchEvent('tap', {})
  for (let i = 0; i < 100 && stack.sim.state.calls.jscode2session < 2; i++) await simulate.sleep(50)
  await settled(comp)
  t.equal(comp.data.error, '', 'logged in without a phone')
  t.equal(comp.data.phone, '')
  t.equal(comp.data.needsPhone, true, 'still no phone: the button stays for later')
})
