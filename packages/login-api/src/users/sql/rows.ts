import type { Kysely, Transaction } from 'kysely'
import { maskPhone } from '@wxlogin/service-kit'
import type { PiiCipher } from '../pii.js'
import { phoneContext, type Identity, type PhoneInfo, type UserRecord } from '../user-store.js'
import type { Tables, UsersTable } from './schema.js'

// The users table's rows: written, read back into a UserRecord, and the phone's columns.

/** A sealed value as it is ("pii1:..."); a value in clear (no key configured) as JSON. */
const stored = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v))

export type Db = Kysely<Tables> | Transaction<Tables>
export type PhoneColumns = Pick<UsersTable, 'phone_sealed' | 'phone_masked' | 'phone_country_code'>

/** INSERT that does nothing when a unique key is taken; true when the row went in. */
export async function insertIfAbsent<T extends keyof Tables> (
  trx: Db,
  mysql: boolean,
  table: T,
  row: Tables[T]
): Promise<boolean> {
  const q = trx.insertInto(table).values(row as never)
  const r = await (mysql ? q.ignore() : q.onConflict(oc => oc.doNothing())).executeTakeFirst()
  return Number(r.numInsertedOrUpdatedRows ?? 0n) > 0
}

/** The sealed phone, and what may be read without the key. */
export function phoneColumns (pii: PiiCipher, userId: string, phone: PhoneInfo): PhoneColumns {
  return {
    phone_sealed: stored(pii.seal(phone, phoneContext(userId))),
    phone_masked: maskPhone(phone.purePhoneNumber),
    phone_country_code: phone.countryCode
  }
}

export const blankRow = (userId: string, unionid: string | null, now: Date): UsersTable => ({
  user_id: userId,
  unionid,
  nickname: null,
  head_pic: null,
  phone_sealed: null,
  phone_masked: null,
  phone_country_code: null,
  phone_verified_at: null,
  created_at: now,
  updated_at: now
})

export const sealed = (s: string): unknown => (s.startsWith('pii1:') ? s : JSON.parse(s))

export const iso = (d: Date | string): string => (d instanceof Date ? d : new Date(d)).toISOString()

export function toRecord (row: UsersTable, identities: Identity[], phone: PhoneInfo | null): UserRecord {
  return {
    user_id: row.user_id,
    unionid: row.unionid,
    nickname: row.nickname,
    head_pic: row.head_pic,
    phone,
    phone_verified_at: phone === null ? null : iso(row.phone_verified_at ?? row.updated_at),
    identities: identities.map(i => ({ appid: i.appid, openid: i.openid })),
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at)
  }
}
