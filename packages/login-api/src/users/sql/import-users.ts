import { randomUUID } from 'node:crypto'
import type { RedisHandle } from '@wxlogin/service-kit'
import type { LoginKeys } from '../../keys.js'
import type { PiiCipher } from '../pii.js'
import { phoneContext, type Identity, type PhoneInfo, type UserRecord } from '../user-store.js'
import type { SqlDatabase } from './database.js'
import { blankRow, insertIfAbsent, phoneColumns, type Db } from './rows.js'

export interface ImportReport {
  /** Records read from Redis. */
  read: number
  /** Users written to SQL for the first time. */
  copied: number
  /** Users already in SQL, updated because the Redis record was newer. */
  updated: number
  /** Users already in SQL and as new as in Redis: left as they are. */
  unchanged: number
  /** What could not be copied as it is, and why (an identity or unionid that SQL gives another user). */
  conflicts: Array<{ user_id: string, reason: string }>
}

/**
 * Copies the users of the Redis store into SQL (docs/sql-users.md: moving a deployment). Safe
 * to run again, and to stop and start over: a user already in SQL is updated only when its
 * Redis record is newer, an identity already claimed is left to its user. So a second run,
 * after the login-apis have switched to SQL, copies what changed meanwhile and nothing twice.
 */
export async function importUsers (
  redis: RedisHandle,
  keys: LoginKeys,
  database: SqlDatabase,
  pii: PiiCipher,
  progress: (r: ImportReport) => void = () => {}
): Promise<ImportReport> {
  const report: ImportReport = { read: 0, copied: 0, updated: 0, unchanged: 0, conflicts: [] }
  const mysql = database.config.dialect === 'mysql'
  const match = keys.userPattern
  for (const send of await redis.masters()) {
    let cursor = '0'
    do {
      const [next, found] = (await send(['SCAN', cursor, 'MATCH', match, 'COUNT', '500'])) as [string, string[]]
      cursor = next
      for (const key of found) {
        const raw = (await send(['GET', key])) as string | null
        if (raw === null) continue
        const record = await adopted(send, keys, JSON.parse(raw) as Partial<UserRecord> & Partial<Identity>)
        if (record === null) continue
        report.read++
        await database.db
          .transaction()
          .setIsolationLevel('read committed')
          .execute(async trx => {
            await copy(trx, mysql, pii, record, report)
          })
      }
      progress(report)
    } while (cursor !== '0')
  }
  return report
}

type Send = (args: string[]) => Promise<unknown>

/**
 * A record as it is, or one the login-api wrote before user_ids (key user:{appid}:{openid}) as
 * the user it becomes, unless its identity was since resolved (the newer record covers it).
 */
type Stored = Partial<UserRecord> & Partial<Identity>

async function adopted (send: Send, keys: LoginKeys, r: Stored): Promise<Found | null> {
  if (typeof r.user_id === 'string') return { record: r as UserRecord, legacy: false }
  if (typeof r.appid !== 'string' || typeof r.openid !== 'string') return null
  if ((await send(['EXISTS', keys.identity(r.appid, r.openid)])) === 1) return null
  const now = new Date().toISOString()
  const record: UserRecord = {
    user_id: randomUUID(),
    unionid: r.unionid ?? null,
    nickname: r.nickname ?? null,
    head_pic: r.head_pic ?? null,
    phone: r.phone ?? null,
    phone_verified_at: null,
    identities: [{ appid: r.appid, openid: r.openid }],
    created_at: r.created_at ?? now,
    updated_at: r.updated_at ?? now
  }
  return { record, legacy: true }
}

/** A record to copy; `legacy`: from before user_ids (and before encryption: its phone is in clear). */
interface Found {
  record: UserRecord
  legacy: boolean
}

async function copy (
  trx: Db,
  mysql: boolean,
  pii: PiiCipher,
  { record, legacy }: Found,
  report: ImportReport
): Promise<void> {
  const id = record.user_id
  // A legacy record's identity may be in SQL already (the first run): that run copied it.
  if (legacy) {
    const i = record.identities[0] as Identity
    if (
      (await trx
        .selectFrom('wxlogin_identities')
        .select('user_id')
        .where('appid', '=', i.appid)
        .where('openid', '=', i.openid)
        .executeTakeFirst()) !== undefined
    ) {
      report.unchanged++
      return
    }
  }
  const phone = openPhone(pii, record.phone, phoneContext(id))
  const updatedAt = new Date(record.updated_at)
  const columns = {
    nickname: record.nickname ?? null,
    head_pic: record.head_pic ?? null,
    ...(phone === null
      ? { phone_sealed: null, phone_masked: null, phone_country_code: null, phone_verified_at: null }
      : {
          ...phoneColumns(pii, id, phone),
          phone_verified_at: new Date(record.phone_verified_at ?? record.updated_at)
        }),
    updated_at: updatedAt
  }
  let unionid = record.unionid ?? null
  if (unionid !== null) {
    const owner = await trx
      .selectFrom('wxlogin_users')
      .select('user_id')
      .where('unionid', '=', unionid)
      .executeTakeFirst()
    if (owner !== undefined && owner.user_id !== id) {
      report.conflicts.push({
        user_id: id,
        reason: `its unionid belongs to user ${owner.user_id} in SQL; copied without it`
      })
      unionid = null
    }
  }
  const cur = await trx
    .selectFrom('wxlogin_users')
    .select(['updated_at', 'unionid'])
    .where('user_id', '=', id)
    .forUpdate()
    .executeTakeFirst()
  if (cur === undefined) {
    await insertIfAbsent(trx, mysql, 'wxlogin_users', {
      ...blankRow(id, unionid, new Date(record.created_at)),
      ...columns
    })
    report.copied++
  } else if (new Date(cur.updated_at).getTime() < updatedAt.getTime()) {
    await trx
      .updateTable('wxlogin_users')
      .set({ ...columns, ...(cur.unionid === null && unionid !== null ? { unionid } : {}) })
      .where('user_id', '=', id)
      .execute()
    report.updated++
  } else {
    report.unchanged++
  }
  for (const i of Array.isArray(record.identities) ? record.identities : []) {
    if (
      await insertIfAbsent(trx, mysql, 'wxlogin_identities', {
        appid: i.appid,
        openid: i.openid,
        user_id: id,
        created_at: new Date(record.created_at)
      })
    ) {
      continue
    }
    const owner = await trx
      .selectFrom('wxlogin_identities')
      .select('user_id')
      .where('appid', '=', i.appid)
      .where('openid', '=', i.openid)
      .executeTakeFirst()
    if (owner !== undefined && owner.user_id !== id) {
      report.conflicts.push({
        user_id: id,
        reason: `identity ${i.appid}/${i.openid} belongs to user ${owner.user_id} in SQL; left there`
      })
    }
  }
}

function openPhone (pii: PiiCipher, stored: unknown, context: string): PhoneInfo | null {
  if (stored === null || stored === undefined) return null
  const phone = pii.open<PhoneInfo>(stored, context)
  return typeof phone?.purePhoneNumber === 'string' ? phone : null
}
