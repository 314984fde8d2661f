#!/usr/bin/env node
// pnpm soak: logins for SOAK_SECONDS (default 600) at SOAK_RATE journeys a second (default 15) on
// real processes, two login-apis and two token-brokers on Redis Sentinel, while a fault schedule
// kills and freezes them and makes WeChat slow, busy, rude and revoke its token. Prints what was
// lost (a table), and exits non-zero if any row failed. README: docs/soak.md.
import { writeFileSync } from 'node:fs'
import { schedule, runSchedule } from './lib/faults.mjs'
import { Load } from './lib/load.mjs'
import { details, report, table } from './lib/report.mjs'
import { root, Stack } from './lib/stack.mjs'

const seconds = Number(process.env.SOAK_SECONDS ?? 600)
const rate = Number(process.env.SOAK_RATE ?? 15)
const ownSentinels = process.env.SOAK_REDIS_SENTINELS
if (!Number.isInteger(seconds) || seconds < 60 || !(rate > 0 && rate <= 200)) {
  console.error('SOAK_SECONDS must be a whole number >= 60, SOAK_RATE between 0 and 200')
  process.exit(2)
}
const log = line => { console.log(line) }

const stack = new Stack()
let exitCode = 1
const interrupted = () => { log('interrupted: stopping everything'); stack.close().finally(() => process.exit(130)) }
process.once('SIGINT', interrupted)
process.once('SIGTERM', interrupted)
try {
  log(`soak: ${seconds} s at ${rate} journeys/s; starting Redis Sentinel, the simulator, 2 brokers, 2 login-apis`)
  await stack.start({ ownSentinels, ownMaster: process.env.SOAK_REDIS_MASTER })
  const faults = schedule(stack, seconds, { ownRedis: ownSentinels !== undefined })
  const load = new Load(stack, { rate })
  const t0 = Date.now()
  load.start()
  const run = runSchedule(faults, t0, log)
  const progress = setInterval(() => {
    const n = load.answers.length
    log(`${((Date.now() - t0) / 1000).toFixed(0).padStart(5)} s  ${n} answers, ${load.answers.filter(a => a.status === 200).length} ok, ${load.inflight.size} in flight`)
  }, 30_000)
  await new Promise(resolve => setTimeout(resolve, seconds * 1000))
  clearInterval(progress)
  await run.done
  await load.stop()
  const t1 = Date.now()
  log('load stopped; checking every session, then SIGTERM to every service')
  for (const s of [...stack.brokers, ...stack.logins]) await stack.ready(s, 60_000)
  const deadSessions = await load.checkSessions()
  const calls = await stack.simCalls()
  await stack.sample()
  const exits = await stack.stopServices()
  const revokes = faults.filter(f => f.revokes !== undefined).length
  const rows = report({ load, windows: run.windows, faults, calls, deadSessions, exits, fatal: stack.fatal, memory: stack.memory, t0, t1, revokes })
  const text = table(rows)
  log(`\n${text}\n`)
  for (const w of run.windows.filter(x => x.failed !== undefined)) log(`fault failed: ${w.name}: ${w.failed}`)
  for (const f of stack.fatal.slice(0, 5)) log(`${f.service}: ${f.line}`)
  for (const line of details({ load, windows: run.windows, t0, stack, deadSessions })) log(line)
  writeFileSync(`${root}soak/last-run.md`, `${new Date().toISOString()}: ${seconds} s at ${rate} journeys/s\n\n${text}\n`)
  const failed = rows.filter(r => r[3] === false).length
  log(failed === 0 ? 'soak passed' : `soak FAILED: ${failed} rows`)
  exitCode = failed === 0 ? 0 : 1
} catch (err) {
  log(`soak could not run: ${err?.stack ?? err}`)
} finally {
  await stack.close()
}
process.exit(exitCode)
