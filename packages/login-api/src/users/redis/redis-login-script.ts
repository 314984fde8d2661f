import { randomUUID } from 'node:crypto'
import { keySlot, steerToSlot, type RedisHandle } from '@wxlogin/service-kit'
import { COMMIT, COMMIT_LOCAL, READ, READ_LOCAL } from './login-lua.js'
import type { LoginEvent, RedisStreamEvents } from '../../login/events.js'
import type { PiiCipher } from '../pii.js'
import {
  blankUser,
  merge,
  normalise,
  phoneContext,
  samePhone,
  type Identity,
  type UpsertResult,
  type UserPatch,
  type UserRecord
} from '../user-store.js'
import type { RedisUserStore } from './redis-user-store.js'

/** What a login's commit builds on, as read in one round trip: '' where a key was absent. */
export interface LoginSnapshot {
  /** The identity's user_id. */
  known: string
  /** The unionid's user_id. */
  union: string
  /** The record of `known` (or, for a new identity, of `union`), exactly as stored. */
  raw: string
  /** A new identity's record from before user_ids (user:{appid}:{openid}). */
  legacy: string
}

/** The login's writes, worked out in this process from a snapshot. */
export interface LoginPlan extends UpsertResult {
  snapshot: LoginSnapshot
  identity: Identity
  /** The record to store (its phone sealed). */
  stored: string
  /** The login's unionid, to link to this user where nobody holds it yet. */
  linkUnionid: string | null
}

/** What a commit did: `written` false when it found the snapshot changed; events may be out already. */
export interface Commit {
  written: boolean
  emitted: boolean
}

/**
 * A login's user writes in two round trips: `read` rides with the login code's answer being
 * kept, `commit` writes the identity, the record, the unionid link and the login events, with
 * the session and its WAIT beside it. The merge happens here, so the phone is sealed and the
 * events masked as the RedisUserStore does.
 *
 * On one server (single, Sentinel) each is one script over every key. A Cluster spreads the keys
 * over slots, so there a new user's id is chosen to put its record in its identity's slot
 * (steerToSlot), and the scripts touch those two keys; the unionid, the previous release's
 * record and the events are commands of their own, sent alongside where nothing depends on the
 * script's answer (a returning user's events), after it otherwise (a new user's). A user made
 * before this release, or found from another app's identity, has its record elsewhere: one
 * more round trip to read it, and its identity is claimed on its own before the record is written.
 */
export class RedisLoginScript {
  private readonly cluster: boolean

  constructor (
    private readonly redis: RedisHandle,
    private readonly users: RedisUserStore,
    private readonly pii: PiiCipher,
    private readonly events: RedisStreamEvents
  ) {
    this.cluster = redis.mode === 'cluster'
  }

  /** Issued at once, so it goes out in the same write as the caller's other commands. */
  async read (identity: Identity, unionid: string | null): Promise<LoginSnapshot> {
    const idKey = this.users.identityKey(identity)
    const legacyKey = this.users.legacyKey(identity)
    const prefix = this.users.userKey('')
    if (!this.cluster) {
      const keys = [idKey, legacyKey, ...(unionid !== null ? [this.users.unionidKey(unionid)] : [])]
      const r = (await this.redis.cmd.eval(READ, { keys, arguments: [prefix] })) as string[]
      return { known: r[0] ?? '', union: r[1] ?? '', raw: r[2] ?? '', legacy: r[3] ?? '' }
    }
    const [local, union, legacy] = await Promise.all([
      this.redis.cmd.eval(READ_LOCAL, { keys: [idKey], arguments: [prefix] }) as Promise<string[]>,
      unionid !== null ? this.redis.cmd.get(this.users.unionidKey(unionid)) : null,
      this.redis.cmd.get(legacyKey)
    ])
    const known = local[0] ?? ''
    let raw = local[1] ?? ''
    const target = known !== '' ? known : (union ?? '')
    if (target !== '' && !(known !== '' && local[2] === '1')) {
      raw = (await this.redis.cmd.get(this.users.userKey(target))) ?? ''
    }
    return { known, union: union ?? '', raw, legacy: known === '' ? (legacy ?? '') : '' }
  }

  /** A new user's id: in a Cluster, one whose record shares its identity's slot. */
  private newUserId (identity: Identity): string {
    const id = randomUUID()
    if (!this.cluster) return id
    return steerToSlot(this.users.userKey(''), id, keySlot(this.users.identityKey(identity))) ?? id
  }

  /** The merged user, as the store would write it: a snapshot's record with this login on it. */
  plan (snapshot: LoginSnapshot, identity: Identity, unionid: string | null, patch: UserPatch): LoginPlan {
    const userId =
      snapshot.known !== '' ? snapshot.known : snapshot.union !== '' ? snapshot.union : this.newUserId(identity)
    const now = new Date().toISOString()
    let base: Record<string, unknown> | null = null
    if (snapshot.raw !== '') base = JSON.parse(snapshot.raw) as Record<string, unknown>
    else if (snapshot.known === '' && snapshot.legacy !== '') {
      // Adopted as the new record's base, as the store's UPSERT does.
      const { appid: _a, openid: _o, ...rest } = JSON.parse(snapshot.legacy) as Record<string, unknown>
      base = rest
    }
    const oldPhone = base === null ? null : this.users.phoneOf(base.phone, userId)
    const cur =
      base === null
        ? blankUser(userId, now)
        : normalise({ ...blankUser(userId, now), ...base, user_id: userId } as unknown as UserRecord, oldPhone)
    const user = merge(cur, identity, unionid, patch, now)
    const sealed = user.phone === null ? null : this.pii.seal(user.phone, phoneContext(userId))
    return {
      snapshot,
      identity,
      user,
      isNew: base === null,
      phoneChanged: !samePhone(oldPhone, patch.phone),
      stored: JSON.stringify({ ...base, ...user, phone: sealed }),
      linkUnionid: unionid !== null && snapshot.union === '' ? unionid : null
    }
  }

  /**
   * The plan written with its events (unless `emitted`: a refused attempt's are out already), and
   * `kept` (the login code's answer) rewritten. Nothing of the user is written when another login
   * changed the identity or the record since the snapshot: read again.
   */
  async commit (
    plan: LoginPlan,
    events: LoginEvent[],
    kept: { key: string, record: string } | undefined,
    emitted: boolean
  ): Promise<Commit> {
    if (this.cluster) return await this.commitSpread(plan, emitted ? [] : events, kept)
    const { snapshot, user } = plan
    const userKey = this.users.userKey(user.user_id)
    const out = emitted ? [] : events
    const fields = out.flatMap(e => {
      const flat = Object.entries(this.events.fields(e)).flat()
      return [String(flat.length), ...flat]
    })
    const unionKey = plan.linkUnionid !== null ? this.users.unionidKey(plan.linkUnionid) : userKey
    const write = this.redis.cmd.eval(COMMIT, {
      keys: [this.users.identityKey(plan.identity), userKey, this.events.key, unionKey, kept?.key ?? userKey],
      arguments: [
        snapshot.known,
        snapshot.raw,
        user.user_id,
        plan.stored,
        plan.linkUnionid !== null ? '1' : '0',
        kept?.record ?? '',
        String(this.events.maxLen),
        String(out.length),
        ...fields
      ]
    })
    // Answered only once a replica has it (REDIS_WAIT_REPLICAS): its WAIT rides in the same write.
    const written = Number(await this.redis.durable(userKey, write)) === 1
    return { written, emitted: emitted || written }
  }

  private async commitSpread (
    plan: LoginPlan,
    events: LoginEvent[],
    kept: { key: string, record: string } | undefined
  ): Promise<Commit> {
    const { snapshot, user } = plan
    const idKey = this.users.identityKey(plan.identity)
    const userKey = this.users.userKey(user.user_id)
    let keys = [idKey, userKey]
    if (keySlot(idKey) !== keySlot(userKey)) {
      keys = [userKey]
      // The identity has to be claimed on its own, before the record names it.
      if (
        snapshot.known === '' &&
        (await this.redis.durable(idKey, this.redis.cmd.set(idKey, user.user_id, { NX: true }))) !== 'OK'
      ) {
        return { written: false, emitted: false }
      }
    }
    const write = this.redis.durable(
      userKey,
      this.redis.cmd.eval(COMMIT_LOCAL, { keys, arguments: [snapshot.known, snapshot.raw, user.user_id, plan.stored] })
    )
    // A returning user's events go out with the write: its user_id is settled, and a refused
    // write is tried again for the same user. A new user's wait for the write to stand.
    const early = snapshot.known !== '' && events.length > 0
    const [answer] = await Promise.all([write, early ? this.events.emit(events) : undefined])
    if (Number(answer) !== 1) return { written: false, emitted: early }
    await Promise.all([
      early ? undefined : this.events.emit(events),
      plan.linkUnionid !== null
        ? this.redis.cmd.set(this.users.unionidKey(plan.linkUnionid), user.user_id, { NX: true })
        : undefined,
      kept !== undefined ? this.redis.cmd.set(kept.key, kept.record, { XX: true, KEEPTTL: true }) : undefined
    ])
    return { written: true, emitted: true }
  }
}
