import t from 'tap'
import { waitFor } from '@wxlogin/testing'
import { run, stackPorts as portsFor } from './helpers.js'

/** The stack's "running" banner; failing, with what the stack printed by then (and its exit code). */
async function started (stack: ReturnType<typeof run>): Promise<void> {
  let exit: number | null | undefined
  stack.exited.then(code => { exit = code }, () => {})
  try {
    await waitFor(() => stack.output().includes('The stack is running') || exit !== undefined, { timeoutMs: 60_000, what: 'the stack to start' })
  } catch (err) {
    throw new Error(`${(err as Error).message}; it printed:\n${stack.output()}`)
  }
  if (exit !== undefined && !stack.output().includes('The stack is running')) throw new Error(`the stack exited (${String(exit)}) before it ran; it printed:\n${stack.output()}`)
}

t.test('the README flow: start the stack, run the demo, Ctrl-C stops everything', async t => {
  const ports = await portsFor()
  const stack = run(t, 'scripts/start.mjs', { ...ports, LOG_LEVEL: 'warn' })
  await started(stack)

  const demo = run(t, 'scripts/demo.mjs', { SIM_URL: `http://127.0.0.1:${ports.SIM_PORT}`, LOGIN_URL: `http://127.0.0.1:${ports.LOGIN_PORT}` })
  t.equal(await demo.exited, 0, 'the demo succeeds')
  t.match(demo.output(), /Logged in: [0-9a-f-]{36} \(demo-\w+\), phone 13800138000 \(new user\)\./)
  t.match(demo.output(), /The retry got the same login \(user [0-9a-f-]{36}, is_new_user true\), with 0 code2session and 0 phone exchanges at WeChat/, 'the demo shows a retry that gets the same login')

  const metrics = await (await fetch(`http://127.0.0.1:${ports.LOGIN_METRICS_PORT}/metrics`)).text()
  t.match(metrics, /login_requests_total\{result="ok"\} 2/, 'the login and its retry')
  t.match(metrics, /login_phone_exchanges_total\{result="ok"\} 1/)
  const brokerMetrics = await (await fetch(`http://127.0.0.1:${ports.BROKER_METRICS_PORT}/metrics`)).text()
  t.match(brokerMetrics, /token_broker_refreshes_total\{appid="wxdev0000000000001",reason="miss",result="ok"\} 1/)
  t.notMatch(metrics + brokerMetrics, /13800138000/, 'no phone number in metrics')

  stack.child.kill('SIGINT')
  t.equal(await stack.exited, 0, 'Ctrl-C exits cleanly')
  for (const p of [ports.SIM_PORT, ports.BROKER_PORT, ports.LOGIN_PORT]) {
    await t.rejects(fetch(`http://127.0.0.1:${p}/healthz`), `port ${p} closed`)
  }
})

t.test('tokens expiring in the simulator are refreshed ahead by the broker; no login fails', async t => {
  const ports = await portsFor()
  const stack = run(t, 'scripts/start.mjs', {
    ...ports,
    LOG_LEVEL: 'warn',
    // Tokens live 12 s; the broker refreshes when 9 s remain, so one refresh-ahead is due ~3 s in.
    SIM_TOKEN_EXPIRES_IN: '12',
    TOKEN_REFRESH_AHEAD_SECONDS: '9'
  })
  await started(stack)
  const sim = `http://127.0.0.1:${ports.SIM_PORT}`
  const api = `http://127.0.0.1:${ports.LOGIN_PORT}`
  const post = async (url: string, body: object): Promise<{ status: number, json: Record<string, unknown> }> => {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    return { status: res.status, json: await res.json() as Record<string, unknown> }
  }
  const brokerRefreshes = async (reason: string): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${ports.BROKER_METRICS_PORT}/metrics`)).text()
    const m = new RegExp(`token_broker_refreshes_total\\{[^}]*reason="${reason}",result="ok"\\} (\\d+)`).exec(text)
    return m === null ? 0 : Number(m[1])
  }

  let logins = 0
  const failures: string[] = []
  await waitFor(async () => {
    const openid = `u${logins}`
    const code = (await post(`${sim}/__sim/login-codes`, { openid })).json.code
    const phoneCode = (await post(`${sim}/__sim/phone-codes`, { phoneNumber: '13800138000', openid })).json.code
    const res = await post(`${api}/api/user/thirdLogin`, { code, phoneCode })
    logins++
    if (res.status !== 200 || res.json.phone_error !== null) failures.push(JSON.stringify(res.json))
    return await brokerRefreshes('ahead') >= 1 && logins >= 10
  }, { timeoutMs: 60_000, intervalMs: 200, what: 'a refresh-ahead' })
  t.same(failures, [], `all ${logins} logins succeeded with a phone number`)
  t.equal(await brokerRefreshes('miss'), 1, 'only the first token was a miss: the token never ran out')
  t.ok(await brokerRefreshes('ahead') >= 1)
  // Every hop to WeChat keeps its connection alive: the broker's (tokens, code2session) and the
  // login-api's (phone numbers), a few connections for all those calls.
  const calls = await (await fetch(`${sim}/__sim/calls`)).json() as { apiConnections: number, jscode2session: number, getuserphonenumber: number }
  t.ok(calls.jscode2session + calls.getuserphonenumber >= 20, `${calls.jscode2session + calls.getuserphonenumber} WeChat calls`)
  t.ok(calls.apiConnections <= 6, `over ${calls.apiConnections} connections`)
})
