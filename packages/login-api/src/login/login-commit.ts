import type { FastifyInstance } from 'fastify'
import { errors } from '../errors.js'
import type { DoneExchange, Exchange } from '../exchanges/exchange-store.js'
import type { LoginEvent } from './events.js'
import type { Commit, LoginSnapshot } from '../users/redis/redis-login-script.js'
import { newSessionToken } from '../sessions/session-tokens.js'
import { storeCall } from '../store-call.js'
import type { Identity, UserPatch, UserRecord } from '../users/user-store.js'

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
  /** The script path's read, started by the caller so that it rides in an earlier round trip. */
  snapshot?: Promise<LoginSnapshot>
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

/** Reads and commits lost to concurrent logins of the same user before giving up with a 503. */
const COMMIT_ATTEMPTS = 8

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
 * everything durable before it returns. With users in Redis, one script after one read (see
 * RedisLoginScript); otherwise (users in SQL, memory) the stores' own steps.
 */
export async function commitLogin (app: FastifyInstance, input: CommitInput): Promise<Committed> {
  if (app.loginScript !== null && input.snapshot !== undefined) return await scripted(app, input, input.snapshot)
  const { identity, login } = input
  const { user, isNew, phoneChanged } = await storeCall(app.users.upsertUser(identity, input.unionid, input.patch))
  const events = loginEvents(user, identity, isNew, phoneChanged)
  // Independent writes, issued together: one pipeline rather than one round trip each.
  const [, , session] = await storeCall(
    Promise.all([
      isNew ? app.exchanges.annotate(login.key, markedNew(login)) : undefined,
      app.events.emit(events),
      issueSession(app, user.user_id, identity)
    ])
  )
  return { user, isNew, events, session: session.answer }
}

async function scripted (app: FastifyInstance, input: CommitInput, first: Promise<LoginSnapshot>): Promise<Committed> {
  const script = app.loginScript
  if (script === null) throw new Error('no login script')
  const { identity, login } = input
  let emitted = false
  for (let attempt = 0; attempt < COMMIT_ATTEMPTS; attempt++) {
    const snapshot = await storeCall(attempt === 0 ? first : script.read(identity, input.unionid))
    const plan = script.plan(snapshot, identity, input.unionid, input.patch)
    const userId = plan.user.user_id
    const events = loginEvents(plan.user, identity, plan.isNew, plan.phoneChanged)
    const kept = plan.isNew ? { key: login.key, record: JSON.stringify(markedNew(login)) } : undefined
    // The session beside the commit, in the same write: it names a user_id the commit may yet
    // refuse, and is taken back if it does.
    const [done, session]: [Commit, Awaited<ReturnType<typeof issueSession>>] = await storeCall(
      Promise.all([script.commit(plan, events, kept, emitted), issueSession(app, userId, identity)])
    )
    if (done.written) return { user: plan.user, isNew: plan.isNew, events, session: session.answer }
    // A Cluster may have written a returning user's events already: not twice.
    emitted ||= done.emitted
    await storeCall(session.drop())
  }
  throw errors.storeUnavailable()
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
