import { createHmac, randomBytes } from 'node:crypto'
import { sha256Hex } from '@wxlogin/service-kit'
import type { SessionJwts } from './session-jwts.js'
import type { RefreshFamily, RefreshStore, RotateResult } from './refresh-store.js'
import type { Identity } from '../../users/user-store.js'

/** A refresh token: `<family id>.<secret>`, 128 bits naming the family and 256 secret bits. */
const REFRESH_SHAPE = /^([A-Za-z0-9_-]{22})\.[A-Za-z0-9_-]{43}$/

// A type, not an interface: it must fit the response schema's open object type.
export type IssuedPair = { token: string, expires_in: number, refresh_token: string }

export interface SignedSessionOptions {
  /** How long a refresh token lives unused (SESSION_TTL_SECONDS). */
  refreshTtlSeconds: number
  /** How long the token spent last still answers with the same successor (REFRESH_TOKEN_GRACE_SECONDS). */
  graceSeconds: number
  /** Families (logins) one user may hold at once (SESSIONS_PER_USER_MAX). */
  maxPerUser: number
  /** Derives a token's successor (signing-keys.ts successorKey). */
  successorKey: Buffer
}

export type RefreshOutcome =
  | { ok: true, pair: IssuedPair, result: 'rotated' | 'grace' }
  | { ok: false, result: 'reuse' | 'conflict' | 'unknown', family?: RefreshFamily }

/**
 * SESSION_FORMAT=jwt: a short-lived signed access token and a rotating refresh token. A refresh
 * token works once; its successor is derived from it with a key only the login-api holds (HMAC),
 * so a client that sent the same refresh twice (a lost answer, a double tap) is given the same
 * successor within the grace, while nothing but a hash of any token is stored. Presenting a token
 * spent before that revokes the whole family: one of the two holders is a thief.
 */
export class SignedSessions {
  constructor (
    readonly jwts: SessionJwts,
    private readonly store: RefreshStore,
    private readonly opts: SignedSessionOptions
  ) {}

  private successor (token: string, familyId: string): string {
    return `${familyId}.${createHmac('sha256', this.opts.successorKey).update(token).digest('base64url')}`
  }

  private async pair (familyId: string, family: RefreshFamily, refreshToken: string): Promise<IssuedPair> {
    const token = await this.jwts.sign({
      sub: family.user_id,
      appid: family.appid,
      openid: family.openid,
      sid: familyId
    })
    return { token, expires_in: this.jwts.ttlSeconds, refresh_token: refreshToken }
  }

  /** A new family for a login: its first refresh token is random, the family stored before it is answered. */
  async issue (userId: string, identity: Identity): Promise<IssuedPair> {
    const familyId = randomBytes(16).toString('base64url')
    const refreshToken = `${familyId}.${randomBytes(32).toString('base64url')}`
    const family = { user_id: userId, appid: identity.appid, openid: identity.openid }
    await this.store.create(
      familyId,
      sha256Hex(refreshToken),
      family,
      this.opts.refreshTtlSeconds,
      this.opts.maxPerUser
    )
    return await this.pair(familyId, family, refreshToken)
  }

  async refresh (refreshToken: string): Promise<RefreshOutcome> {
    const familyId = REFRESH_SHAPE.exec(refreshToken)?.[1]
    if (familyId === undefined) return { ok: false, result: 'unknown' }
    const next = this.successor(refreshToken, familyId)
    const r: RotateResult = await this.store.rotate(
      familyId,
      sha256Hex(refreshToken),
      sha256Hex(next),
      this.opts.refreshTtlSeconds,
      this.opts.graceSeconds * 1000
    )
    if (r.result === 'rotated' || r.result === 'grace') {
      return { ok: true, result: r.result, pair: await this.pair(familyId, r.family, next) }
    }
    return r.result === 'reuse' ? { ok: false, result: 'reuse', family: r.family } : { ok: false, result: r.result }
  }

  async isLive (familyId: string): Promise<boolean> {
    return await this.store.isLive(familyId)
  }

  async revoke (familyId: string): Promise<void> {
    await this.store.revoke(familyId)
  }

  async revokeAllOf (userId: string): Promise<number> {
    return await this.store.revokeAllOf(userId)
  }
}
