#!/usr/bin/env node
// Against a running `pnpm start`: mints a login code and a phone code at the simulator,
// logs in with both, reads the user back with the session token, retries the login with the
// same codes (as a mini-program does when the answer is lost) and asks the gateway route.
import { randomBytes } from 'node:crypto'
const sim = process.env.SIM_URL ?? 'http://127.0.0.1:3999'
const api = process.env.LOGIN_URL ?? 'http://127.0.0.1:3000'
const phoneNumber = process.env.DEMO_PHONE ?? '13800138000'

async function call (step, url, init = {}) {
  let res
  try {
    res = await fetch(url, { ...init, headers: { 'content-type': 'application/json', ...init.headers } })
  } catch (err) {
    console.error(`${step}: cannot reach ${url} (${err.cause?.code ?? err.message}). Is "pnpm start" running?`)
    process.exit(1)
  }
  const body = res.status === 204 ? null : await res.json()
  console.log(`\n${step}\n  ${init.method ?? 'GET'} ${url} -> ${res.status}\n  ${JSON.stringify(body, null, 2).replace(/\n/g, '\n  ')}`)
  if (!res.ok) {
    console.error(`\n${step} failed.`)
    process.exit(1)
  }
  return body
}

const openid = `demo-${Date.now().toString(36)}`
const { code } = await call('1. The mini-program calls wx.login() (the simulator mints the code)', `${sim}/__sim/login-codes`, { method: 'POST', body: JSON.stringify({ openid }) })
const { code: phoneCode } = await call('2. The user taps "allow phone number" (the simulator mints the phoneCode)', `${sim}/__sim/phone-codes`, { method: 'POST', body: JSON.stringify({ phoneNumber, openid }) })
// One random retry_key per login attempt, sent again on its retries: only it gets a kept answer.
const body = JSON.stringify({ code, phoneCode, nickname: 'Demo user', head_pic: 'https://example.com/avatar.png', retry_key: randomBytes(16).toString('hex') })
const login = await call('3. POST /api/user/thirdLogin', `${api}/api/user/thirdLogin`, { method: 'POST', body })
const me = await call('4. GET /api/user/me with the session token', `${api}/api/user/me`, { headers: { authorization: `Bearer ${login.token}` } })
console.log(`\nLogged in: ${me.user_id} (${me.openid}), phone ${me.phone?.phoneNumber ?? '(none)'}${login.is_new_user ? ' (new user)' : ''}.`)

// The mobile network dropped the answer: the mini-program sends the same request again.
const before = await (await fetch(`${sim}/__sim/calls`)).json()
const retry = await call('5. The answer was lost: the mini-program retries with the same code, phoneCode and retry_key', `${api}/api/user/thirdLogin`, { method: 'POST', body })
const after = await (await fetch(`${sim}/__sim/calls`)).json()
const same = retry.user.user_id === login.user.user_id && retry.user.phone?.phoneNumber === login.user.phone?.phoneNumber && retry.is_new_user === login.is_new_user
console.log(`\nThe retry got ${same ? 'the same login' : 'a DIFFERENT login'} (user ${retry.user.user_id}, is_new_user ${retry.is_new_user}), with ${after.jscode2session - before.jscode2session} code2session and ${after.getuserphonenumber - before.getuserphonenumber} phone exchanges at WeChat: nothing spent or billed twice.`)
if (!same) process.exit(1)

await call('6. GET /api/user/session, as an API gateway asks (X-User-Id, X-User-Openid, X-User-Appid)', `${api}/api/user/session`, { headers: { authorization: `Bearer ${retry.token}` } })

// WeChat tells the server the user withdrew the phone number (用户撤回手机号授权): the simulator
// pushes it as WeChat does to the broker's push port, and the login-api applies it.
const pushed = await call('7. WeChat pushes user_authorization_revoke (RevokeInfo 8: the phone) to the broker', `${sim}/__sim/push`, { method: 'POST', body: JSON.stringify({ message: { Event: 'user_authorization_revoke', OpenID: me.openid, RevokeInfo: '8' } }) })
if (pushed.answered !== 'success') process.exit(1)
let withdrawn = null
for (let i = 0; i < 100 && withdrawn === null; i++) {
  const now = await (await fetch(`${api}/api/user/me`, { headers: { authorization: `Bearer ${retry.token}` } })).json()
  if (now.phone === null) withdrawn = now
  else await new Promise(resolve => setTimeout(resolve, 100))
}
if (withdrawn === null) {
  console.error('\nThe withdrawal did not reach the user record within 10 s.')
  process.exit(1)
}
console.log('\n8. GET /api/user/me: the phone is gone from the record (phone: null, phone_verified_at: null), within seconds of the push.')
