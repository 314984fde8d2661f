import { APPID, CLIENT_TOKEN, broker, details, hopChain, loginApi, mintLogins, post, quick, row, sequential, sim, stopAll } from '../lib/harness.mjs'

// 0. One login at a time on an idle stack: the simulator answers at once and the stores are
// in memory, so what is measured is the services' own latency. Against the floor: the same
// hops between framework-less servers that only forward.
export async function idleLogin () {
  const n = quick ? 1000 : 3000
  const warmup = 300
  const chain = await hopChain(0)
  // Hop by hop: the simulator alone, the broker's code2session (broker and simulator), the
  // whole login; each against the floor of the same hops.
  const body = JSON.stringify({ code: 'x'.repeat(32), phoneCode: 'y'.repeat(32), nickname: 'bench' })
  const bodies = Array.from({ length: n + warmup }, () => body)
  const floor = {
    wechat: await sequential(chain[0], '/', bodies, warmup),
    broker: await sequential(chain[1], '/', bodies, warmup),
    login: await sequential(chain[2], '/', bodies, warmup)
  }
  await stopAll()

  const wx = await sim(0)
  const b = await broker(wx.url, undefined)
  const api = await loginApi(wx.url, b.url)
  const auth = { authorization: `Bearer ${CLIENT_TOKEN}` }
  const { access_token: token } = await (await fetch(`${b.url}/v1/apps/${APPID}/access-token`, { headers: auth })).json()
  const phoneCodes = (await post(`${wx.url}/__sim/phone-codes`, { phoneNumber: '13800138000', openids: Array.from({ length: n + warmup }, (_, i) => `o${i}`) })).codes
  const ours = {
    wechat: await sequential(wx.url, `/wxa/business/getuserphonenumber?access_token=${token}`, phoneCodes.map((code, i) => JSON.stringify({ code, openid: `o${i}` })), warmup),
    broker: await sequential(b.url, `/v1/apps/${APPID}/code2session`, (await mintLogins(wx.url, n + warmup)).map(x => JSON.stringify({ js_code: JSON.parse(x).code })), warmup, auth),
    login: await sequential(api.url, '/api/user/thirdLogin', await mintLogins(wx.url, n + warmup), warmup)
  }
  details.idleLogin = { ours, floor }
  const title = '0 idle thirdLogin (sim 0 ms, memory stores)'
  const ms = x => `${Math.round(x * 100) / 100} ms`
  row(title, `thirdLogin p50 / p90 / p99, ${ours.login.count} logins one at a time`, `${ours.login.p50} / ${ours.login.p90} / ${ours.login.p99} ms`, '<= 2.5 ms (p50)', ours.login.p50 <= 2.5)
  row(title, 'floor: the same hops between node:http servers that only forward: p50', ms(floor.login.p50), '(this machine)')
  row(title, 'hop p50, simulator alone (getuserphonenumber) / its floor (1 hop)', `${ms(ours.wechat.p50)} / ${ms(floor.wechat.p50)}`, '')
  row(title, 'hop p50, broker code2session (broker + simulator) / its floor (2 hops)', `${ms(ours.broker.p50)} / ${ms(floor.broker.p50)}`, '')
  row(title, 'p50 above the floor: simulator / broker (its own) / login-api (its own)', [
    ours.wechat.p50 - floor.wechat.p50,
    (ours.broker.p50 - floor.broker.p50) - (ours.wechat.p50 - floor.wechat.p50),
    (ours.login.p50 - floor.login.p50) - (ours.broker.p50 - floor.broker.p50) - (ours.wechat.p50 - floor.wechat.p50)
  ].map(ms).join(' / '), '')
  for (const [k, v] of Object.entries(ours)) if (v.failed > 0) row(title, `failed: ${k}`, String(v.failed), '0', false)
  await stopAll()
}
