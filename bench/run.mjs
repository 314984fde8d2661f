#!/usr/bin/env node
// `pnpm bench`: what users of this system care about, measured on this machine with real
// child processes, real redis-server processes and the WeChat simulator. Figures that depend
// on the machine are reported against a baseline measured in the same run. Prints one table
// and writes it to bench-results.json. Not part of CI's pass/fail.
import { writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { details, LOG_LEVEL, root, rows, stopAll } from './lib/harness.mjs'
import { hotPath } from './scenarios/hot-path.mjs'
import { idleLogin } from './scenarios/idle-login.mjs'
import { login } from './scenarios/login.mjs'
import { stampede } from './scenarios/stampede.mjs'
import { waitCost } from './scenarios/wait-cost.mjs'
import { roundTrips } from './scenarios/round-trips.mjs'
import { tracing } from './scenarios/tracing.mjs'

function print () {
  const cols = ['scenario', 'metric', 'measured', 'target', 'status']
  const width = cols.map(c => Math.max(c.length, ...rows.map(r => String(r[c]).length)))
  const line = r => cols.map((c, i) => String(r[c]).padEnd(width[i])).join(' | ')
  console.log(`\n${line(Object.fromEntries(cols.map(c => [c, c])))}`)
  console.log(width.map(w => '-'.repeat(w)).join('-|-'))
  for (const r of rows) console.log(line(r))
}

const started = Date.now()
process.on('SIGINT', () => { stopAll().finally(() => process.exit(130)) })
const only = process.env.BENCH_ONLY // e.g. BENCH_ONLY=stampede
try {
  if (only === undefined || only === 'idle') await idleLogin()
  if (only === undefined || only === 'hot') await hotPath()
  if (only === undefined || only === 'stampede') await stampede()
  if (only === undefined || only === 'login') await login()
  if (only === undefined || only === 'wait') await waitCost()
  if (only === undefined || only === 'round-trips') await roundTrips()
  if (only === undefined || only === 'tracing') await tracing()
} finally {
  await stopAll()
}
print()
const machine = { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGb: Math.round(totalmem() / 2 ** 30), logLevel: LOG_LEVEL }
writeFileSync(`${root}bench-results.json`, `${JSON.stringify({ date: new Date().toISOString(), seconds: Math.round((Date.now() - started) / 1000), machine, rows, details }, null, 2)}\n`)
console.log(`\n${Math.round((Date.now() - started) / 1000)} s on ${machine.cpus} CPUs (${machine.cpuModel}), Node ${machine.node}; written to bench-results.json`)
