import { randomUUID } from 'node:crypto'
import {
  blankUser,
  merge,
  samePhone,
  type DeletedUser,
  type Identity,
  type UpsertResult,
  type UserPatch,
  type UserRecord,
  type UserStore,
  writeSides,
  withoutFields,
  type Forgotten,
  type LoginSides,
  type PendingLogin
} from './user-store.js'

/** For one replica without Redis. */
export class MemoryUserStore implements UserStore {
  private readonly users = new Map<string, UserRecord>()
  private readonly byIdentity = new Map<string, string>()
  private readonly byUnionid = new Map<string, string>()

  constructor (private readonly sides: LoginSides) {}

  beginLogin (identity: Identity, unionid: string | null): PendingLogin {
    return { commit: async write => await writeSides(this.upsert(identity, unionid, write.patch), this.sides, write) }
  }

  private upsert (identity: Identity, unionid: string | null, patch: UserPatch): UpsertResult {
    const idKey = `${identity.appid}:${identity.openid}`
    let userId = this.byIdentity.get(idKey)
    if (userId === undefined) {
      userId = (unionid !== null ? this.byUnionid.get(unionid) : undefined) ?? randomUUID()
      this.byIdentity.set(idKey, userId)
    }
    if (unionid !== null && !this.byUnionid.has(unionid)) this.byUnionid.set(unionid, userId)
    const now = new Date().toISOString()
    const cur = this.users.get(userId)
    const user = merge(cur ?? blankUser(userId, now), identity, unionid, patch, now)
    this.users.set(userId, user)
    return { user, isNew: cur === undefined, phoneChanged: !samePhone(cur?.phone ?? null, patch.phone) }
  }

  async forget (userId: string, what: Forgotten): Promise<UserRecord | null> {
    const user = this.users.get(userId)
    if (user === undefined) return null
    const next = withoutFields(user, what, new Date().toISOString())
    this.users.set(userId, next)
    return { ...next, phone: null }
  }

  async getUser (userId: string): Promise<UserRecord | null> {
    return this.users.get(userId) ?? null
  }

  async userIdOf (identity: Identity): Promise<string | null> {
    return this.byIdentity.get(`${identity.appid}:${identity.openid}`) ?? null
  }

  async identitiesOf (userId: string): Promise<Identity[]> {
    return this.users.get(userId)?.identities ?? []
  }

  async deleteUser (userId: string): Promise<DeletedUser | null> {
    const user = this.users.get(userId)
    if (user === undefined) return null
    for (const i of user.identities) this.byIdentity.delete(`${i.appid}:${i.openid}`)
    if (user.unionid !== null && this.byUnionid.get(user.unionid) === userId) this.byUnionid.delete(user.unionid)
    this.users.delete(userId)
    return { user_id: userId, identities: user.identities, created_at: user.created_at }
  }
}
