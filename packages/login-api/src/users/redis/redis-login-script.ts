import { randomUUID } from 'node:crypto'
import { keySlot, steerToSlot, type RedisHandle } from '@wxlogin/service-kit'
import { COMMIT, COMMIT_LOCAL, READ, READ_LOCAL } from './login-lua.js'
import type { LoginEvent, RedisStreamEvents } from '../../login/events.js'
import { errors } from '../../errors.js'
import type { PiiCipher } from '../pii.js'
import {
  blankUser,
  type Beside,
  type LoginWrite,
  type LoginWritten,
  type PendingLogin,
  merge,
  normalise,
  phoneContext,
  samePhone,
  type Identity,
  type PhoneInfo,
  type UpsertResult,
  type UserPatch,
  type UserRecord
} from '../user-store.js'
import type { LoginKeys } from '../../keys.js'

/** What a login's commit builds on, as read in one round trip: '' where a key was absent. */
export interface LoginSnapshot {
  /** The identity's user_id. */
  known: string
  /** The unionid's user_id. */
  union: string
  /** The record of `known` (or, for a new identity, of `union`), exactly as stored. */
  raw: string
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

/** A record's phone opened (null where there is none, or it is not a phone). */
export function openPhone (pii: PiiCipher, stored: unknown, userId: string): PhoneInfo | null {
  const phone = pii.open<unknown>(stored, phoneContext(userId))
  return phone !== null && typeof phone === 'object' && typeof (phone as PhoneInfo).purePhoneNumber === 'string'
    ? (phone as PhoneInfo)
    : null
}

/**
 * Reads and commits lost to concurrent logins of the same user before giving up with a 503. A
 * commit is refused only when another one was written, so each round lets one login through:
 * this many logins of one user at once all succeed (ten at once are tested, under load).
 */
const COMMIT_ATTEMPTS = 16

/**
 * A login's user writes in two round trips: `read` rides with the login code's answer being
 * kept, `commit` writes the identity, the record, the unionid link and the login events, with
 * the session and its WAIT beside it. The merge happens here, so the phone is sealed and the
 * events masked as the RedisUserStore does.
 *
 * On one server (single, Sentinel) each is one script over every key. A Cluster spreads the keys
 * over slots, so there a new user's id is chosen to put its record in its identity's slot
 * (steerToSlot), and the scripts touch those two keys; the unionid and the events are commands
 * of their own, sent alongside where nothing depends on the script's answer (a returning user's
 * events), after it otherwise (a new user's). A user found from another app's identity has its
 * record elsewhere: one more round trip to read it, and its identity is claimed on its own
 * before the record is written.
 */
export class RedisLoginScript {
  private readonly cluster: boolean

  constructor (
    private readonly redis: RedisHandle,
    private readonly keys: LoginKeys,
    private readonly pii: PiiCipher,
    private readonly events: RedisStreamEvents
  ) {
    this.cluster = redis.mode === 'cluster'
  }

  /**
   * The read goes out at once, in the same write as the caller's other commands (the login
   * code's answer being kept); the commit builds on it, reading again when another login
   * changed the user in between.
   */
  begin (identity: Identity, unionid: string | null): PendingLogin {
    const first = this.read(identity, unionid)
    first.catch(() => {})
    return { commit: async write => await this.commitFrom(first, identity, unionid, write) }
  }

  private async commitFrom<S extends Beside> (
    first: Promise<LoginSnapshot>,
    identity: Identity,
    unionid: string | null,
    write: LoginWrite<S>
  ): Promise<LoginWritten<S>> {
    let emitted = false
    for (let attempt = 0; attempt < COMMIT_ATTEMPTS; attempt++) {
      const snapshot = await (attempt === 0 ? first : this.read(identity, unionid))
      const plan = this.plan(snapshot, identity, unionid, write.patch)
      const events = write.events(plan)
      const kept = plan.isNew && write.kept !== undefined
        ? { key: write.kept.key, record: JSON.stringify(write.kept.record) }
        : undefined
      // The session beside the commit, in the same write: it names a user_id the commit may yet
      // refuse, and is taken back if it does.
      const [done, beside]: [Commit, S] = await Promise.all([
        this.commit(plan, events, kept, emitted),
        write.beside(plan.user.user_id)
      ])
      if (done.written) {
        return { user: plan.user, isNew: plan.isNew, phoneChanged: plan.phoneChanged, events, beside }
      }
      // A Cluster may have written a returning user's events already: not twice.
      emitted ||= done.emitted
      await beside.drop()
    }
    throw errors.storeUnavailable()
  }

  private async read (identity: Identity, unionid: string | null): Promise<LoginSnapshot> {
    const idKey = this.keys.identity(identity.appid, identity.openid)
    const prefix = this.keys.user('')
    if (!this.cluster) {
      const keys = [idKey, ...(unionid !== null ? [this.keys.unionid(unionid)] : [])]
      const r = (await this.redis.cmd.eval(READ, { keys, arguments: [prefix] })) as string[]
      return { known: r[0] ?? '', union: r[1] ?? '', raw: r[2] ?? '' }
    }
    const [local, union] = await Promise.all([
      this.redis.cmd.eval(READ_LOCAL, { keys: [idKey], arguments: [prefix] }) as Promise<string[]>,
      unionid !== null ? this.redis.cmd.get(this.keys.unionid(unionid)) : null
    ])
    const known = local[0] ?? ''
    let raw = local[1] ?? ''
    const target = known !== '' ? known : (union ?? '')
    if (target !== '' && !(known !== '' && local[2] === '1')) {
      raw = (await this.redis.cmd.get(this.keys.user(target))) ?? ''
    }
    return { known, union: union ?? '', raw }
  }

  /** A new user's id: in a Cluster, one whose record shares its identity's slot. */
  private newUserId (identity: Identity): string {
    const id = randomUUID()
    if (!this.cluster) return id
    return steerToSlot(this.keys.user(''), id, keySlot(this.keys.identity(identity.appid, identity.openid))) ?? id
  }

  /** The merged user, as the store would write it: a snapshot's record with this login on it. */
  private plan (snapshot: LoginSnapshot, identity: Identity, unionid: string | null, patch: UserPatch): LoginPlan {
    const userId =
      snapshot.known !== '' ? snapshot.known : snapshot.union !== '' ? snapshot.union : this.newUserId(identity)
    const now = new Date().toISOString()
    const base = snapshot.raw === '' ? null : (JSON.parse(snapshot.raw) as Record<string, unknown>)
    const oldPhone = base === null ? null : openPhone(this.pii, base.phone, userId)
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
  private async commit (
    plan: LoginPlan,
    events: LoginEvent[],
    kept: { key: string, record: string } | undefined,
    emitted: boolean
  ): Promise<Commit> {
    if (this.cluster) return await this.commitSpread(plan, emitted ? [] : events, kept)
    const { snapshot, user } = plan
    const userKey = this.keys.user(user.user_id)
    const out = emitted ? [] : events
    const fields = out.flatMap(e => {
      const flat = Object.entries(this.events.fields(e)).flat()
      return [String(flat.length), ...flat]
    })
    const unionKey = plan.linkUnionid !== null ? this.keys.unionid(plan.linkUnionid) : userKey
    const idKey = this.keys.identity(plan.identity.appid, plan.identity.openid)
    const write = this.redis.cmd.eval(COMMIT, {
      keys: [idKey, userKey, this.events.key, unionKey, kept?.key ?? userKey],
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
    const idKey = this.keys.identity(plan.identity.appid, plan.identity.openid)
    const userKey = this.keys.user(user.user_id)
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
        ? this.redis.cmd.set(this.keys.unionid(plan.linkUnionid), user.user_id, { NX: true })
        : undefined,
      kept !== undefined ? this.redis.cmd.set(kept.key, kept.record, { XX: true, KEEPTTL: true }) : undefined
    ])
    return { written: true, emitted: true }
  }
}
