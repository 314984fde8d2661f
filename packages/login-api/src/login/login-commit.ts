import type { FastifyInstance } from 'fastify'
import type { DoneExchange, Exchange } from '../exchanges/exchange-store.js'
import type { LoginEvent } from './events.js'
import { newSessionToken } from '../sessions/session-tokens.js'
import { storeCall } from '../store-call.js'
import { inSpan } from '@wxlogin/service-kit'
import type { Identity, PendingLogin, UserPatch, UserRecord } from '../users/user-store.js'

/** code2session's answer (the login code's): who the user is in this app. */
export interface CodeAnswer {
  openid: string
  unionid: string | null
}

export interface CommitInput {
  identity: Identity
  unionid: string | null
  patch: UserPatch
  /** The login code's exchange: its key, whether this is a retry, the record kept for it. */
  login: { key: string, reused: boolean, answer: CodeAnswer, record?: DoneExchange<CodeAnswer> }
  /** The user's write, begun when the identity was known (see UserStore.beginLogin). */
  pending: PendingLogin
}

export interface SessionAnswer {
  token: string
  expires_in: number
  refresh_token?: string
}
export interface Committed {
  user: UserRecord
  isNew: boolean
  events: LoginEvent[]
  session: SessionAnswer
}

function loginEvents (user: UserRecord, identity: Identity, isNew: boolean, phoneChanged: boolean): LoginEvent[] {
  const events: LoginEvent[] = []
  if (isNew) events.push({ type: 'user.created', user, ...identity })
  events.push({ type: 'user.logged_in', user, ...identity })
  if (phoneChanged) events.push({ type: 'user.phone_changed', user, ...identity })
  return events
}

/** The kept answer marked: the first attempt created the user, so a retry says is_new_user too. */
const markedNew = (login: CommitInput['login']): Exchange<CodeAnswer> => ({
  ...(login.record ?? { state: 'done', value: login.answer }),
  newUser: true
})

/**
 * The user stored, the login events written, a session issued and the exchanges remembered,
 * everything durable before it returns: one write of the user store (see UserStore.beginLogin),
 * which carries the events and the kept answer itself or hands them on.
 */
export async function commitLogin (app: FastifyInstance, input: CommitInput): Promise<Committed> {
  const { identity, login } = input
  const session = async (userId: string): Promise<Awaited<ReturnType<typeof issueSession>>> =>
    await inSpan('login session', {}, async () => await issueSession(app, userId, identity))
  const done = await inSpan('login commit', {}, async span => {
    const committed = await storeCall(
      input.pending.commit({
        patch: input.patch,
        events: d => loginEvents(d.user, identity, d.isNew, d.phoneChanged),
        kept: { key: login.key, record: markedNew(login) },
        beside: session
      })
    )
    span.setAttribute('login.new_user', committed.isNew)
    return committed
  })
  return { user: done.user, isNew: done.isNew, events: done.events, session: done.beside.answer }
}

/** An opaque session token, or with SESSION_FORMAT=jwt a session JWT and a refresh token. */
async function issueSession (
  app: FastifyInstance,
  userId: string,
  identity: Identity
): Promise<{ answer: SessionAnswer, drop: () => Promise<void> }> {
  const config = app.loginConfig
  const signed = app.signedSessions
  if (signed !== null) {
    const answer = await signed.issue(userId, identity)
    return {
      answer,
      drop: async () => {
        await signed.revoke(answer.refresh_token.split('.')[0] as string)
      }
    }
  }
  const { token, hash } = newSessionToken()
  await app.sessions.create(hash, { user_id: userId, ...identity }, config.sessionTtlSeconds, config.sessionsPerUserMax)
  return {
    answer: { token, expires_in: config.sessionTtlSeconds },
    drop: async () => {
      await app.sessions.delete(hash)
    }
  }
}
