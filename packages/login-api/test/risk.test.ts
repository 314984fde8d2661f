// Bots stopped at registration (LOGIN_RISK_POLICY): WeChat's getUserRiskRank through the broker,
// on the real stack (the simulator answers a rank per openid).
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { metricValue } from '@wxlogin/testing'
import { login } from './helper.js'
import { stack } from './stack.js'

const checks = async (app: FastifyInstance, rank: string, action: string): Promise<number> =>
  await metricValue(app, 'login_risk_checks_total', { rank, action })

t.test('enforce: a risky registration is 403 high_risk_user and creates nothing; a returning user is never asked', async t => {
  const { apps, sim, mint } = await stack(t, 1, { login: { risk: { policy: 'enforce', maxRank: 2 } } })
  const app = apps[0] as FastifyInstance
  const appid = app.loginConfig.apps[0] as string

  sim.state.codes.riskRanks.set('o-bot', 4)
  const bot = await login(app, { ...await mint('o-bot') })
  t.equal(bot.statusCode, 403)
  t.match(bot.json(), { error: 'high_risk_user' })
  t.equal(await app.users.userIdOf({ appid, openid: 'o-bot' }), null, 'no user created')
  t.equal(await checks(app, '4', 'rejected'), 1)

  sim.state.codes.riskRanks.set('o-person', 2)
  const person = await login(app, { ...await mint('o-person') })
  t.equal(person.statusCode, 200, 'at the maximum: let in')
  t.equal(person.json().is_new_user, true)
  t.equal(await checks(app, '2', 'allowed'), 1)

  // The same person, risky by now: a returning user is not asked again.
  sim.state.codes.riskRanks.set('o-person', 4)
  const asked = sim.state.calls.getuserriskrank
  const back = await login(app, { ...await mint('o-person') })
  t.equal(back.statusCode, 200)
  t.equal(sim.state.calls.getuserriskrank, asked, 'getuserriskrank not called for a returning user')
})

t.test('observe: counted and let in; WeChat unavailable: counted, let in', async t => {
  const { apps, sim, mint } = await stack(t, 1, { login: { risk: { policy: 'observe', maxRank: 2 } } })
  const app = apps[0] as FastifyInstance
  sim.state.codes.riskRanks.set('o-watched', 3)
  const watched = await login(app, { ...await mint('o-watched') })
  t.equal(watched.statusCode, 200)
  t.equal(await checks(app, '3', 'observed'), 1)

  sim.faults.add('getuserriskrank', { kind: 'errcode', errcode: 45009 }, 10)
  const unasked = await login(app, { ...await mint('o-unasked') })
  t.equal(unasked.statusCode, 200, 'a risk check that failed never keeps a user out')
  t.equal(await checks(app, 'unknown', 'unavailable'), 1)
})

t.test('off (the default): never asked', async t => {
  const { apps, sim, mint } = await stack(t, 1)
  const app = apps[0] as FastifyInstance
  sim.state.codes.riskRanks.set('o-any', 4)
  t.equal((await login(app, { ...await mint('o-any') })).statusCode, 200)
  t.equal(sim.state.calls.getuserriskrank, 0)
})
