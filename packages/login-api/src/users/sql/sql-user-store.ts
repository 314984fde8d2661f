import { randomUUID } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import type { PiiCipher } from '../pii.js'
import {
  phoneContext,
  samePhone,
  type Identity,
  type PhoneInfo,
  type UpsertResult,
  type UserPatch,
  type UserRecord,
  type UserStore,
  type DeletedUser,
  type Forgotten,
  type LoginSides,
  type PendingLogin,
  writeSides
} from '../user-store.js'
import type { SqlDatabase } from './database.js'
import type { Tables, UsersTable } from './schema.js'
import { blankRow, insertIfAbsent, iso, phoneColumns, sealed, toRecord, type Db, type PhoneColumns } from './rows.js'

/** A transaction that lost a race it can win on a second try (the other side has committed by then). */
class Again extends Error {}

const ATTEMPTS = 5

/** Deadlocks, serialization failures and unique violations: each resolved by running the transaction again. */
function retryable (err: unknown): boolean {
  if (err instanceof Again) return true
  const code = (err as { code?: unknown, errno?: unknown }).code
  const errno = (err as { errno?: unknown }).errno
  return code === '40P01' || code === '40001' || code === '23505' || errno === 1213 || errno === 1062
}

/**
 * Users in PostgreSQL or MySQL (docs/sql-users.md). One transaction a login, at READ COMMITTED,
 * its races settled by the unique keys: the identity (appid, openid) is the authority for who
 * an identity is, the unionid's unique index for which user a unionid joins. An insert that
 * meets a concurrent uncommitted twin waits for it, then does nothing; the loser reads the
 * winner's row, or starts again.
 */
export class SqlUserStore implements UserStore {
  private readonly db: Kysely<Tables>
  private readonly mysql: boolean

  constructor (
    private readonly database: SqlDatabase,
    private readonly pii: PiiCipher,
    private readonly sides: LoginSides
  ) {
    this.db = database.db
    this.mysql = database.config.dialect === 'mysql'
  }

  private async insertIfAbsent<T extends keyof Tables>(trx: Db, table: T, row: Tables[T]): Promise<boolean> {
    return await insertIfAbsent(trx, this.mysql, table, row)
  }

  private async attempt<T>(work: (trx: Transaction<Tables>, live: () => void) => Promise<T>): Promise<T> {
    return await this.database.run(async live => {
      for (let i = 1; ; i++) {
        try {
          return await this.db
            .transaction()
            .setIsolationLevel('read committed')
            .execute(async trx => await work(trx, live))
        } catch (err) {
          if (i >= ATTEMPTS || !retryable(err)) throw err
          live()
        }
      }
    })
  }

  /**
   * A login in few statements, each a round trip: the identity's user locked with all its
   * identities in one SELECT, then its UPDATE (a returning user: BEGIN, 2, COMMIT); a new user
   * inserted whole, never read back (BEGIN, the lookup, the unionid's owner, 2 INSERTs, COMMIT).
   */
  beginLogin (identity: Identity, unionid: string | null): PendingLogin {
    return {
      commit: async write => await writeSides(await this.upsert(identity, unionid, write.patch), this.sides, write)
    }
  }

  private async upsert (identity: Identity, unionid: string | null, patch: UserPatch): Promise<UpsertResult> {
    return await this.attempt(async (trx, live) => {
      const now = new Date()
      let rows = await this.locked(trx, { identity })
      if (rows.length === 0) {
        live()
        let owner = unionid === null ? undefined : await this.ownerOf(trx, unionid)
        if (owner === undefined) {
          const userId = randomUUID()
          const row: UsersTable = { ...blankRow(userId, unionid, now), ...this.patchColumns(userId, patch, now) }
          live()
          if (await this.insertIfAbsent(trx, 'wxlogin_users', row)) {
            live()
            // Another login of this identity claimed it first: ours rolls back (with the user it made).
            if (
              !(await this.insertIfAbsent(trx, 'wxlogin_identities', { ...identity, user_id: userId, created_at: now }))
            ) {
              throw new Again()
            }
            return {
              user: toRecord(row, [identity], patch.phone ?? null),
              isNew: true,
              phoneChanged: patch.phone !== undefined
            }
          }
          // The unionid went to a concurrent first login, committed by now: join its user.
          owner = unionid === null ? undefined : await this.ownerOf(trx, unionid)
          if (owner === undefined) throw new Again()
        }
        live()
        if (!(await this.insertIfAbsent(trx, 'wxlogin_identities', { ...identity, user_id: owner, created_at: now }))) {
          throw new Again()
        }
        rows = await this.locked(trx, { userId: owner })
      }
      const cur = rows[0]
      if (cur === undefined) throw new Again()
      const userId = cur.user_id
      const oldPhone = this.phoneOf(cur)
      const set: Partial<UsersTable> = { updated_at: now, ...this.patchColumns(userId, patch, now) }
      // The same number verified again keeps the time it was first verified (as merge() does).
      if (samePhone(oldPhone, patch.phone) && cur.phone_verified_at !== null) delete set.phone_verified_at
      if (unionid !== null && cur.unionid === null) {
        // The first user to bring a unionid keeps it; one resolved before its app joined the Open
        // Platform keeps its own user_id and no unionid (docs/sql-users.md).
        live()
        if ((await this.ownerOf(trx, unionid)) === undefined) set.unionid = unionid
      }
      live()
      await trx.updateTable('wxlogin_users').set(set).where('user_id', '=', userId).execute()
      live()
      const identities = rows.map(r => ({ appid: r.id_appid, openid: r.id_openid }))
      const user = toRecord({ ...cur, ...set }, identities, patch.phone ?? oldPhone)
      return { user, isNew: false, phoneChanged: !samePhone(oldPhone, patch.phone) }
    })
  }

  /** The columns a login's patch sets (the phone sealed for `userId`). */
  private patchColumns (userId: string, patch: UserPatch, now: Date): Partial<UsersTable> {
    const set: Partial<UsersTable> = {}
    if (patch.nickname !== undefined) set.nickname = patch.nickname
    if (patch.head_pic !== undefined) set.head_pic = patch.head_pic
    if (patch.phone !== undefined) {
      Object.assign(set, this.phoneColumns(userId, patch.phone), { phone_verified_at: now })
    }
    return set
  }

  /**
   * The user of an identity (or of a user_id), locked, one row per identity it has (oldest
   * first): one statement where it took three. PostgreSQL locks the user row alone (FOR UPDATE
   * OF); MySQL has no OF and locks the identity rows read too.
   */
  private async locked (
    trx: Db,
    by: { identity: Identity } | { userId: string }
  ): Promise<Array<UsersTable & { id_appid: string, id_openid: string }>> {
    let q = trx
      .selectFrom('wxlogin_users as u')
      .innerJoin('wxlogin_identities as mine', 'mine.user_id', 'u.user_id')
      .selectAll('u')
      .select(['mine.appid as id_appid', 'mine.openid as id_openid'])
    q =
      'identity' in by
        ? q.where('u.user_id', '=', eb =>
          eb
            .selectFrom('wxlogin_identities')
            .select('user_id')
            .where('appid', '=', by.identity.appid)
            .where('openid', '=', by.identity.openid)
        )
        : q.where('u.user_id', '=', by.userId)
    q = q.orderBy('mine.created_at').orderBy('mine.appid').orderBy('mine.openid')
    return await (this.mysql ? q.forUpdate() : q.forUpdate('u')).execute()
  }

  private async ownerOf (trx: Db, unionid: string): Promise<string | undefined> {
    return (await trx.selectFrom('wxlogin_users').select('user_id').where('unionid', '=', unionid).executeTakeFirst())
      ?.user_id
  }

  private async identitiesOfIn (trx: Db, userId: string): Promise<Identity[]> {
    return await trx
      .selectFrom('wxlogin_identities')
      .select(['appid', 'openid'])
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .orderBy('appid')
      .orderBy('openid')
      .execute()
  }

  private phoneColumns (userId: string, phone: PhoneInfo): PhoneColumns {
    return phoneColumns(this.pii, userId, phone)
  }

  private phoneOf (row: UsersTable): PhoneInfo | null {
    if (row.phone_sealed === null) return null
    return this.pii.open<PhoneInfo>(sealed(row.phone_sealed), phoneContext(row.user_id))
  }

  async getUser (userId: string): Promise<UserRecord | null> {
    return await this.database.run(async () => {
      const row = await this.db.selectFrom('wxlogin_users').selectAll().where('user_id', '=', userId).executeTakeFirst()
      if (row === undefined) return null
      const phone = this.phoneOf(row)
      if (phone !== null && this.pii.stale(sealed(row.phone_sealed as string))) {
        // Sealed under a key that no longer encrypts (rotation): sealed again, unless changed since.
        await this.db
          .updateTable('wxlogin_users')
          .set(this.phoneColumns(userId, phone))
          .where('user_id', '=', userId)
          .where('phone_sealed', '=', row.phone_sealed)
          .execute()
      }
      return toRecord(row, await this.identitiesOfIn(this.db, userId), phone)
    })
  }

  async userIdOf (identity: Identity): Promise<string | null> {
    return await this.database.run(
      async () =>
        (
          await this.db
            .selectFrom('wxlogin_identities')
            .select('user_id')
            .where('appid', '=', identity.appid)
            .where('openid', '=', identity.openid)
            .executeTakeFirst()
        )?.user_id ?? null
    )
  }

  async identitiesOf (userId: string): Promise<Identity[]> {
    return await this.database.run(async () => await this.identitiesOfIn(this.db, userId))
  }

  async deleteUser (userId: string): Promise<DeletedUser | null> {
    return await this.attempt(async (trx, live) => {
      const row = await trx
        .selectFrom('wxlogin_users')
        .select(['user_id', 'created_at'])
        .where('user_id', '=', userId)
        .forUpdate()
        .executeTakeFirst()
      if (row === undefined) return null
      const identities = await this.identitiesOfIn(trx, userId)
      live()
      await trx.deleteFrom('wxlogin_identities').where('user_id', '=', userId).execute()
      await trx.deleteFrom('wxlogin_users').where('user_id', '=', userId).execute()
      live()
      // The sealed phone goes with the row, never opened.
      return {
        user_id: userId,
        identities: identities.map(i => ({ appid: i.appid, openid: i.openid })),
        created_at: iso(row.created_at)
      }
    })
  }

  async forget (userId: string, what: Forgotten): Promise<UserRecord | null> {
    return await this.database.run(async () => {
      const now = new Date()
      const set: Partial<UsersTable> =
        what === 'phone'
          ? { phone_sealed: null, phone_masked: null, phone_country_code: null, phone_verified_at: null }
          : { nickname: null, head_pic: null }
      await this.db
        .updateTable('wxlogin_users')
        .set({ ...set, updated_at: now })
        .where('user_id', '=', userId)
        .execute()
      const row = await this.db.selectFrom('wxlogin_users').selectAll().where('user_id', '=', userId).executeTakeFirst()
      if (row === undefined) return null
      // Read back without opening the phone: a withdrawal never depends on a key.
      return toRecord(row, await this.identitiesOfIn(this.db, userId), null)
    })
  }
}
