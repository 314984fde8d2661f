import { maskPhone, type RedisHandle } from '@wxlogin/service-kit'
import type { PhoneInfo, UserRecord } from '../users/user-record.js'
import type { LoginKeys } from '../keys.js'

export type LoginEventType =
  | 'user.created'
  | 'user.logged_in'
  | 'user.phone_changed'
  | 'user.deleted'
  | 'user.phone_revoked'
  | 'user.profile_revoked'

export interface LoginEvent {
  type: LoginEventType
  user: UserRecord
  appid: string
  openid: string
  /** Why (user.deleted: `wechat_cancellation` when WeChat said the user cancelled the account). */
  reason?: string
}

/** Where login events go: a Redis Stream, or nowhere without Redis (docs/login-api.md: login events). */
export interface EventSink {
  emit: (events: LoginEvent[]) => Promise<void>
}

export class NoEvents implements EventSink {
  async emit (): Promise<void> {}
}

/**
 * XADD to the events stream (keys.ts), capped near `maxLen` (MAXLEN ~). Every field is a string; the
 * phone number is masked unless EVENTS_INCLUDE_PHONE=true. A login is answered only after its
 * events are written, so a consumer group sees every login at least once (a retried login
 * may write its events twice).
 */
export class RedisStreamEvents implements EventSink {
  readonly key: string
  constructor (
    private readonly redis: RedisHandle,
    keys: LoginKeys,
    readonly maxLen: number,
    private readonly includePhone: boolean
  ) {
    this.key = keys.events
  }

  private phone (p: PhoneInfo | null): string {
    if (p === null) return ''
    return this.includePhone ? p.phoneNumber : maskPhone(p.purePhoneNumber)
  }

  /** An event's fields as XADD takes them (also written by the login's commit script). */
  fields (e: LoginEvent): Record<string, string> {
    return {
      type: e.type,
      user_id: e.user.user_id,
      appid: e.appid,
      openid: e.openid,
      unionid: e.user.unionid ?? '',
      phone: this.phone(e.user.phone),
      country_code: e.user.phone?.countryCode ?? '',
      at: e.user.updated_at,
      ...(e.reason === undefined ? {} : { reason: e.reason })
    }
  }

  async emit (events: LoginEvent[]): Promise<void> {
    if (events.length === 0) return
    // Issued in order on one connection, they are pipelined and appended in that order; the
    // WAIT rides with them.
    await this.redis.durable(
      this.key,
      Promise.all(
        events.map(
          async e =>
            await this.redis.cmd.xAdd(this.key, '*', this.fields(e), {
              TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: this.maxLen }
            })
        )
      )
    )
  }
}
