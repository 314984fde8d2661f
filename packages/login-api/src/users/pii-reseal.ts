import type { RedisHandle } from '@wxlogin/service-kit'
import type { LoginKeys } from '../keys.js'
import type { PiiCipher } from './pii.js'
import type { SqlDatabase } from './sql/database.js'
import { phoneColumns } from './sql/rows.js'
import { phoneContext, type PhoneInfo } from './user-store.js'

/** What one run of `pnpm pii-reseal` found and did. */
export interface ResealReport {
  /** Stored phone numbers looked at (user records and kept phone answers). */
  read: number
  /** Sealed again under the key that now encrypts (in --check: would be). */
  resealed: number
  /** Already under the key that now encrypts. */
  current: number
  /** Sealed under a key id the file no longer holds: left as they are, named by key id. */
  unreadable: Map<string, number>
  /** Records from before user_ids (phone in clear): sealed when `pnpm migrate-legacy` adopts them. */
  legacy: number
}

export const emptyReport = (): ResealReport => ({ read: 0, resealed: 0, current: 0, unreadable: new Map(), legacy: 0 })

/** Values that still need the old key: a removed key line would lock these users out. */
export const pending = (r: ResealReport): number => r.resealed + [...r.unreadable.values()].reduce((a, b) => a + b, 0)

// Written again only if nobody changed the value since it was read; its expiry kept.
const REWRITE_UNCHANGED = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') return 1 end
return 0
`

type Verdict = 'current' | 'reseal' | 'unreadable'

/** What to do with one stored value; counted in the report. */
function judge (pii: PiiCipher, value: unknown, report: ResealReport): Verdict {
  report.read++
  if (!pii.stale(value)) {
    report.current++
    return 'current'
  }
  const keyId = pii.keyIdOf(value)
  if (keyId !== null && !pii.holds(keyId)) {
    report.unreadable.set(keyId, (report.unreadable.get(keyId) ?? 0) + 1)
    return 'unreadable'
  }
  report.resealed++
  return 'reseal'
}

export interface ResealOptions {
  check: boolean
  progress?: (r: ResealReport) => void
}

/**
 * Redis: every user record (`user:*`) and every kept phone answer (`exchange:phone:*`) sealed
 * under another key, sealed again under the first. SCAN-based and idempotent: a run stopped
 * half way is finished by the next; a value a login changed meanwhile is left to that login.
 */
export async function resealRedis (
  redis: RedisHandle,
  keys: LoginKeys,
  pii: PiiCipher,
  opts: ResealOptions,
  report = emptyReport()
): Promise<ResealReport> {
  for (const send of await redis.masters()) {
    for (const [pattern, answers] of [
      [keys.userPattern, false],
      [keys.phoneAnswerPattern, true]
    ] as const) {
      let cursor = '0'
      do {
        const [next, found] = (await send(['SCAN', cursor, 'MATCH', pattern, 'COUNT', '500'])) as [string, string[]]
        cursor = next
        for (const key of found) {
          if (key.endsWith(':reuses')) continue
          await resealKey(redis, key, answers, pii, opts.check, report)
        }
        opts.progress?.(report)
      } while (cursor !== '0')
    }
  }
  return report
}

async function resealKey (
  redis: RedisHandle,
  key: string,
  answer: boolean,
  pii: PiiCipher,
  check: boolean,
  report: ResealReport
): Promise<void> {
  const raw = await redis.cmd.get(key)
  if (raw === null) return
  let record: Record<string, unknown>
  try {
    record = JSON.parse(raw) as Record<string, unknown>
  } catch {
    return
  }
  // A user record holds `phone` (context: its user); a kept phone answer holds `value` (context: its key).
  const field = answer ? 'value' : 'phone'
  if (field === 'phone' && typeof record.user_id !== 'string') {
    if (record.phone !== null && record.phone !== undefined) report.legacy++
    return
  }
  const value = record[field]
  if (value === null || value === undefined) return
  const context = field === 'phone' ? phoneContext(record.user_id as string) : key
  if (judge(pii, value, report) !== 'reseal' || check) return
  const phone = pii.open<PhoneInfo>(value, context)
  const next = JSON.stringify({ ...record, [field]: pii.seal(phone, context) })
  await redis.durable(key, redis.cmd.eval(REWRITE_UNCHANGED, { keys: [key], arguments: [raw, next] }))
}

/** Rows a batch: one SELECT, then one UPDATE per row, each conditional on the value it read. */
const BATCH = 500

/**
 * SQL: every `phone_sealed` not under the first key, in user_id order (keyset pages), each row
 * updated only if its value is still the one read. Idempotent; a stopped run is finished by the next.
 */
export async function resealSql (
  database: SqlDatabase,
  pii: PiiCipher,
  opts: ResealOptions,
  report = emptyReport()
): Promise<ResealReport> {
  const db = database.db
  let after = ''
  for (;;) {
    const rows = await db
      .selectFrom('wxlogin_users')
      .select(['user_id', 'phone_sealed'])
      .where('phone_sealed', 'is not', null)
      .where('user_id', '>', after)
      .orderBy('user_id')
      .limit(BATCH)
      .execute()
    for (const row of rows) {
      const stored = row.phone_sealed as string
      const value = stored.startsWith('pii1:') ? stored : (JSON.parse(stored) as unknown)
      if (judge(pii, value, report) !== 'reseal' || opts.check) continue
      const phone = pii.open<PhoneInfo>(value, phoneContext(row.user_id))
      await db
        .updateTable('wxlogin_users')
        .set(phoneColumns(pii, row.user_id, phone))
        .where('user_id', '=', row.user_id)
        .where('phone_sealed', '=', stored)
        .execute()
    }
    opts.progress?.(report)
    const last = rows.at(-1)
    if (last === undefined || rows.length < BATCH) return report
    after = last.user_id
  }
}
