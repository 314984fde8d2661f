import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { freePort } from '@wxlogin/testing'
import { build, login, testConfig } from './helper.js'
import { SECRET, stack } from './stack.js'

// Every error path a login can take, with the logs of every login-api and the broker at trace
// level; then no line may hold a phone number, a code, a token or a secret.

const PHONES = ['13800138000', '13912345678', '2025550123']

t.test('no log line of any error path holds a phone number, a code, a token or a secret', async t => {
  const { apps, logs, brokerLogs, sim, mint, redis } = await stack(t, 2)
  const [a, b] = apps as [FastifyInstance, FastifyInstance]
  const secrets = new Set<string>([SECRET, a.loginConfig.brokerToken])
  const remember = (...values: unknown[]): void => { for (const v of values) if (typeof v === 'string' && v.length >= 6) secrets.add(v) }

  const attempt = async (app: FastifyInstance, body: object, phoneNumber = PHONES[0]): Promise<void> => {
    const codes = await mint(`o-${secrets.size}`, { phoneNumber })
    remember(codes.code, codes.phoneCode)
    const res = await login(app, { ...codes, ...body })
    remember(res.json().token)
  }

  // Success (the number is logged masked), international numbers, and a retry.
  await attempt(a, {}, PHONES[0])
  await attempt(b, {}, PHONES[2])
  // getuserphonenumber: each errcode WeChat answers, an HTML 500, a dropped connection, a timeout,
  // and a token WeChat rejects twice.
  for (const errcode of [40029, 45011, -1, 47001, 40013]) {
    sim.faults.add('getuserphonenumber', { kind: 'errcode', errcode }, 1)
    await attempt(a, {}, PHONES[1])
  }
  sim.faults.add('getuserphonenumber', { kind: 'status', status: 500 }, 1)
  await attempt(b, {}, PHONES[1])
  sim.faults.add('getuserphonenumber', { kind: 'drop' }, 1)
  await attempt(a, {}, PHONES[1])
  sim.faults.add('getuserphonenumber', { kind: 'latency', latencyMs: 1000 }, 1)
  await attempt(b, {}, PHONES[1])
  sim.faults.add('getuserphonenumber', { kind: 'errcode', errcode: 40001 }, 2)
  await attempt(a, {}, PHONES[1])
  // code2session through the broker: WeChat's refusals and a busy WeChat.
  for (const errcode of [40029, 40163, 45011, 40226, -1]) {
    sim.faults.add('jscode2session', { kind: 'errcode', errcode }, 1)
    await attempt(b, {}, PHONES[1])
  }
  // The token broker failing to get a token (its secret rotated at WeChat).
  sim.state.apps.set(a.loginConfig.apps[0] as string, 'rotated')
  await attempt(a, {}, PHONES[1])
  // Invalid bodies, some carrying numbers where they do not belong.
  for (const payload of [{ code: '', phoneCode: PHONES[0] }, { code: 'x', nickname: `\u0007${PHONES[0]}` }, { code: 'x'.repeat(200) }, `{"code":"${PHONES[1]}"`, { code: 'c', head_pic: `javascript:${PHONES[0]}` }]) {
    await login(a, payload)
  }
  // Sessions: a bad token, a phone change with an invalid code.
  await a.inject({ url: '/api/user/me', headers: { authorization: 'Bearer not-a-real-session-token-000' } })
  // Redis down.
  await redis.stop()
  await attempt(b, {}, PHONES[0]).catch(() => {})
  await redis.start()

  // A login-api whose broker cannot be reached.
  const lost = await build(t, testConfig({ brokerUrl: `http://127.0.0.1:${await freePort()}` }))
  await login(lost.app, { code: 'code-for-an-unreachable-broker', phoneCode: 'phone-code-for-an-unreachable-broker' })
  remember('code-for-an-unreachable-broker', 'phone-code-for-an-unreachable-broker')

  for (const token of sim.state.issuedTokens()) remember(token)
  const text = [...logs, brokerLogs, lost.logs].map(l => l.text()).join('')
  if (process.env.DUMP_LOGS !== undefined) (await import('node:fs')).writeFileSync(process.env.DUMP_LOGS, text)
  t.ok(text.split('\n').length > 40, `${text.split('\n').length} log lines read`)
  t.ok(/138\*\*\*\*8000/.test(text), 'the success path logged the number masked')
  for (const phone of PHONES) {
    t.notOk(text.includes(phone), `no full phone number ${phone.slice(0, 3)}...`)
    t.notOk(text.includes(`86${phone}`), 'nor with its country code')
  }
  t.ok(secrets.size > 30, `${secrets.size} codes, tokens and secrets looked for`)
  const found = [...secrets].filter(s => text.includes(s))
  t.same(found.map(s => `${s.slice(0, 4)}... (${s.length} chars)`), [], 'no code, token or secret in any line')
})
