import type { RedisHandle } from '@wxlogin/service-kit'
import type { LoginKeys } from '../../keys.js'
import { NOTHING_BESIDE, type Identity, type UserPatch, type UserStore } from '../user-store.js'

/** What one run of `pnpm migrate-legacy` found and did. */
export interface LegacyReport {
  /** Records from before user_ids (`user:{appid}:{openid}`) turned into users. */
  adopted: number
  /** Such records whose identity had a user already (adopted at a login): deleted. */
  covered: number
  /** Sessions from before user_ids given their user_id (and a place in the user's index). */
  linked: number
  /** Such sessions ended: their account is gone, or logout everywhere ended them by identity. */
  ended: number
  /** An earlier release's session indexes folded into the index by age. */
  indexes: number
  /** Logout-everywhere markers for sessions from before user_ids, spent and deleted. */
  markers: number
}

export const emptyLegacyReport = (): LegacyReport => ({
  adopted: 0,
  covered: 0,
  linked: 0,
  ended: 0,
  indexes: 0,
  markers: 0
})

type Send = (args: string[]) => Promise<unknown>

// A value written again only if nobody changed it since it was read; its expiry kept.
const REWRITE_UNCHANGED = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') return 1 end
return 0
`

// KEYS: a user's index by age. ARGV: session hash, score (ms), the session's TTL (ms). The index
// lives as long as its longest session.
const INDEX = `
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
`

/**
 * Brings what earlier releases wrote before user_ids up to date, so that no code path has to read
 * it: records `user:{appid}:{openid}` become users (through the store's one login write, so the
 * phone is sealed and a unionid joins its user), sessions without a user_id get one, the old
 * unordered session indexes are folded into the index by age, and the logout-everywhere markers
 * for old sessions are spent. SCAN-based and idempotent: a run stopped half way is finished by the
 * next, and a second run finds nothing to do. Each step runs over every master before the next.
 * With users in SQL the old records are `pnpm import-users`' to copy (run it first); sessions are
 * then given the user_id the database holds.
 */
export async function migrateLegacy (
  redis: RedisHandle,
  keys: LoginKeys,
  users: UserStore,
  opts: { adopt: boolean, progress?: (r: LegacyReport) => void, now?: () => number }
): Promise<LegacyReport> {
  const report = emptyLegacyReport()
  const progress = opts.progress ?? (() => {})
  const now = opts.now ?? Date.now
  if (opts.adopt) {
    const adopt = async (key: string): Promise<void> => {
      await adoptRecord(redis, keys, users, key, report)
    }
    await scan(redis, keys.userPattern, adopt, progress, report)
  }
  await scan(
    redis,
    keys.sessionPattern,
    async key => { await linkSession(redis, keys, users, key, now(), report) },
    progress,
    report
  )
  await scan(
    redis,
    keys.legacySessionIndexPattern,
    async key => { await foldIndex(redis, keys, key, now(), report) },
    progress,
    report
  )
  await scan(
    redis,
    keys.legacySessionsEndedPattern,
    async key => {
      report.markers += await redis.cmd.del(key)
    },
    progress,
    report
  )
  return report
}

async function scan (
  redis: RedisHandle,
  pattern: string,
  each: (key: string) => Promise<void>,
  progress: (r: LegacyReport) => void,
  report: LegacyReport
): Promise<void> {
  for (const send of await redis.masters()) {
    let cursor = '0'
    do {
      const [next, found] = (await (send as Send)(['SCAN', cursor, 'MATCH', pattern, 'COUNT', '500'])) as [
        string,
        string[]
      ]
      cursor = next
      for (const key of found) await each(key)
      progress(report)
    } while (cursor !== '0')
  }
}

const parsed = (raw: string | null): Record<string, unknown> | null => {
  if (raw === null) return null
  try {
    const v = JSON.parse(raw) as unknown
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : null
  } catch {
    return null
  }
}

const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined)

async function adoptRecord (
  redis: RedisHandle,
  keys: LoginKeys,
  users: UserStore,
  key: string,
  report: LegacyReport
): Promise<void> {
  const raw = await redis.cmd.get(key)
  const r = parsed(raw)
  // A record of this release (it has a user_id), or not a record: not ours to change.
  if (r === null || typeof r.user_id === 'string') return
  const appid = text(r.appid)
  const openid = text(r.openid)
  if (appid === undefined || openid === undefined || key !== keys.legacyUser(appid, openid)) return
  const identity: Identity = { appid, openid }
  if ((await users.userIdOf(identity)) !== null) {
    // Adopted at a login already: the old record (its phone in clear) has nothing left to give.
    report.covered += await redis.cmd.del(key)
    await redis.replicated(key)
    return
  }
  const patch: UserPatch = {}
  const nickname = text(r.nickname)
  const headPic = text(r.head_pic)
  if (nickname !== undefined) patch.nickname = nickname
  if (headPic !== undefined) patch.head_pic = headPic
  const phone = r.phone as UserPatch['phone'] | null | undefined
  if (phone !== null && typeof phone === 'object' && typeof phone.purePhoneNumber === 'string') patch.phone = phone
  // Through the one login write, without events: these users logged in long ago.
  const done = await users
    .beginLogin(identity, text(r.unionid) ?? null)
    .commit({ patch, events: () => [], beside: NOTHING_BESIDE })
  const createdAt = text(r.created_at)
  if (done.isNew && createdAt !== undefined) {
    // The account is as old as the old record says, not as this run.
    const userKey = keys.user(done.user.user_id)
    const current = await redis.cmd.get(userKey)
    const record = parsed(current)
    if (current !== null && record !== null) {
      const next = JSON.stringify({ ...record, created_at: createdAt })
      await redis.durable(userKey, redis.cmd.eval(REWRITE_UNCHANGED, { keys: [userKey], arguments: [current, next] }))
    }
  }
  report.adopted++
  await redis.durable(key, redis.cmd.del(key))
}

async function linkSession (
  redis: RedisHandle,
  keys: LoginKeys,
  users: UserStore,
  key: string,
  now: number,
  report: LegacyReport
): Promise<void> {
  const raw = await redis.cmd.get(key)
  const s = parsed(raw)
  if (raw === null || s === null || typeof s.user_id === 'string') return
  const appid = text(s.appid)
  const openid = text(s.openid)
  if (appid === undefined || openid === undefined) return
  const [userId, endedByIdentity, ttlMs] = await Promise.all([
    users.userIdOf({ appid, openid }),
    redis.cmd.exists(keys.legacySessionsEnded(appid, openid)),
    redis.cmd.pTTL(key)
  ])
  if (userId === null || endedByIdentity === 1 || ttlMs <= 0) {
    // Nobody to give it to (the account was deleted), or logout everywhere ended it by identity.
    report.ended += await redis.cmd.del(key)
    await redis.replicated(key)
    return
  }
  const hash = key.slice(keys.session('').length)
  const next = JSON.stringify({ ...s, user_id: userId })
  const index = keys.sessionsByAge(userId)
  // Indexed first: a session the index does not name would outlive logout everywhere.
  await redis.durable(index, redis.cmd.eval(INDEX, { keys: [index], arguments: [hash, String(now), String(ttlMs)] }))
  const written = await redis.durable(key, redis.cmd.eval(REWRITE_UNCHANGED, { keys: [key], arguments: [raw, next] }))
  if (Number(written) === 1) report.linked++
}

async function foldIndex (
  redis: RedisHandle,
  keys: LoginKeys,
  key: string,
  now: number,
  report: LegacyReport
): Promise<void> {
  const userId = key.slice(keys.legacySessionIndex('').length)
  if (userId === '') return
  const index = keys.sessionsByAge(userId)
  for (const hash of await redis.cmd.sMembers(key)) {
    const ttlMs = await redis.cmd.pTTL(keys.session(hash))
    // A session that ended since needs no place in the index.
    if (ttlMs <= 0) continue
    await redis.durable(index, redis.cmd.eval(INDEX, { keys: [index], arguments: [hash, String(now), String(ttlMs)] }))
  }
  report.indexes += await redis.cmd.del(key)
  await redis.replicated(key)
}
