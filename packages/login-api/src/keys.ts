import { sha256Hex } from '@wxlogin/service-kit'

/** A SCAN pattern that matches `text` literally, then anything. */
const literal = (text: string): string => text.replace(/[*?[\]\\]/g, '\\$&')

/**
 * Every Redis key of the login-api, built here and nowhere else (a deletion that spelled a
 * counter's name differently from the counter left the user's data behind). `prefix` is
 * REDIS_KEY_PREFIX. Hash tags ({...}) keep the keys one script touches in one Cluster slot.
 */
export class LoginKeys {
  constructor (readonly prefix: string) {}

  // Users (users/user-store.ts, users/redis/).
  user (userId: string): string {
    return `${this.prefix}user:${userId}`
  }

  identity (appid: string, openid: string): string {
    return `${this.prefix}identity:${appid}:${openid}`
  }

  unionid (unionid: string): string {
    return `${this.prefix}unionid:${unionid}`
  }

  /** Where an earlier release kept a user, before user_ids; read only by `pnpm migrate-legacy` and import-users. */
  legacyUser (appid: string, openid: string): string {
    return `${this.prefix}user:${appid}:${openid}`
  }

  /** Every user record (and legacy record), for the tools that walk them. */
  get userPattern (): string {
    return `${literal(this.prefix)}user:*`
  }

  // Opaque sessions (sessions/session-store.ts).
  session (tokenHash: string): string {
    return `${this.prefix}session:${tokenHash}`
  }

  /** The user's sessions by age: logout everywhere and the per-user cap. */
  sessionsByAge (userId: string): string {
    return `${this.prefix}user-sessions-by-age:${userId}`
  }

  /** Every opaque session, for `pnpm migrate-legacy`. */
  get sessionPattern (): string {
    return `${literal(this.prefix)}session:*`
  }

  /** An earlier release's unordered index of a user's sessions; read only by `pnpm migrate-legacy`. */
  legacySessionIndex (userId: string): string {
    return `${this.prefix}user-sessions:${userId}`
  }

  get legacySessionIndexPattern (): string {
    return `${literal(this.prefix)}user-sessions:*`
  }

  /** Sessions of an identity from before user_ids ended by identity; read only by `pnpm migrate-legacy`. */
  legacySessionsEnded (appid: string, openid: string): string {
    return `${this.prefix}legacy-sessions-ended:${sha256Hex(`${appid}\0${openid}`)}`
  }

  get legacySessionsEndedPattern (): string {
    return `${literal(this.prefix)}legacy-sessions-ended:*`
  }

  // Refresh families (sessions/jwt/refresh-store.ts): a family and its spent tokens share a slot.
  refreshFamily (familyId: string): string {
    return `${this.prefix}refresh:{${familyId}}`
  }

  refreshSpent (familyId: string): string {
    return `${this.refreshFamily(familyId)}:spent`
  }

  refreshIndex (userId: string): string {
    return `${this.prefix}user-refresh:${userId}`
  }

  // Kept exchange answers (exchanges/): named by a hash of what identifies the code, never the code.
  exchange (kind: 'login' | 'phone', ...parts: string[]): string {
    return `${this.prefix}exchange:${kind}:${sha256Hex(parts.join('\0'))}`
  }

  /**
   * A phone code's exchange, bound to the openid. In a Cluster it carries the user's phone
   * counter as its hash tag: one slot, so the claim and the count stay one script. Elsewhere the
   * key is what it always was (an upgrade keeps the answers being kept).
   */
  phoneExchange (appid: string, openid: string, phoneCode: string, cluster: boolean): string {
    const key = this.exchange('phone', appid, openid, phoneCode)
    return cluster && !this.prefix.includes('{') ? `${key}:{${this.phoneCounter(appid, openid)}}` : key
  }

  /** True for a phone code's exchange key (its revoked form differs from a login code's). */
  isPhoneExchange (key: string): boolean {
    return key.startsWith(`${this.prefix}exchange:phone:`)
  }

  /** How many answers a kept exchange has given. */
  exchangeReuses (exchangeKey: string): string {
    return `${exchangeKey}:reuses`
  }

  /** The exchanges kept for one identity, for as long as a code lives. */
  identityExchanges (appid: string, openid: string): string {
    return `${this.prefix}identity-exchanges:${appid}:${openid}`
  }

  /** Every kept phone answer, for pii-reseal. */
  get phoneAnswerPattern (): string {
    return `${literal(this.prefix)}exchange:phone:*`
  }

  // Limits (limits/, plugins/ip-limit.ts, plugins/phone-limit.ts).
  /** @fastify/rate-limit's store prefix for the per-IP limit. */
  get ipLimitPrefix (): string {
    return `${this.prefix}ratelimit:`
  }

  /**
   * The per-user phone exchange counter. The name is the one @fastify/rate-limit counted under
   * before (its child store's "-" and our "phone:" key), so an upgrade kept the window's count.
   */
  phoneCounter (appid: string, openid: string): string {
    return `${this.prefix}ratelimit:-phone:${appid}:${openid}`
  }

  /** Failing login codes of an app (one slot per app), by window; `ip`: one address's. */
  codeFailures (appid: string, window: number, ip?: string): string {
    return `${this.prefix}codefail:{${appid}}${ip === undefined ? '' : `:ip:${ip}`}:${window}`
  }

  /** The login events stream. */
  get events (): string {
    return `${this.prefix}events`
  }
}
