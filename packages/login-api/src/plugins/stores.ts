import fp from 'fastify-plugin'
import { openStoreRedis, type RedisHandle } from '@wxlogin/service-kit'
import { MemoryExchangeStore, RedisExchangeStore, type ExchangeStore } from '../exchanges/exchange-store.js'
import { NoEvents, RedisStreamEvents, type EventSink } from '../login/events.js'
import { MemorySessionStore, RedisSessionStore, type SessionStore } from '../sessions/session-store.js'
import { MemoryCodeFailures, RedisCodeFailures, type CodeFailureGuard } from '../limits/code-failures.js'
import { PiiCipher } from '../users/pii.js'
import type { UserStore } from '../users/user-store.js'
import { RedisUserStore } from '../users/redis/redis-user-store.js'
import { MemoryUserStore } from '../users/memory-user-store.js'
import { SessionJwts } from '../sessions/jwt/session-jwts.js'
import { MemoryRefreshStore, RedisRefreshStore } from '../sessions/jwt/refresh-store.js'
import { SignedSessions } from '../sessions/jwt/signed-sessions.js'
import { successorKey } from '../sessions/jwt/signing-keys.js'

declare module 'fastify' {
  interface FastifyInstance {
    users: UserStore
    sessions: SessionStore
    /** What became of each login and phone code (retries, concurrent requests). */
    exchanges: ExchangeStore
    events: EventSink
    /** Failing login codes per app and IP: a forged-code spray is shed before WeChat. */
    codeFailures: CodeFailureGuard
    /** Seals personal data at rest (PII_ENCRYPTION_KEY_FILE); a pass-through without keys. */
    pii: PiiCipher
    /** SESSION_FORMAT=jwt: signed access tokens and their refresh families; null for opaque sessions. */
    signedSessions: SignedSessions | null
    /** The Redis shared by users, sessions and rate limits (any mode); null in memory mode. */
    redis: RedisHandle | null
    /** Why the store cannot serve right now (unreachable, frozen); undefined while it can. */
    storeProblem: () => string | undefined
  }
}

export default fp(
  async app => {
    const { redis: connection } = app.loginConfig
    const keys = app.loginKeys
    const kept =
      app.database === null ? 'users, sessions and rate limits' : 'sessions and rate limits (users are in the database)'
    const redis = openStoreRedis(
      app,
      connection,
      `No Redis is configured (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES): ${kept} live in this process ` +
        'only; run a single replica'
    )
    app.decorate('redis', redis)
    const pii = new PiiCipher(app.loginConfig.piiKeys)
    app.decorate('pii', pii)
    const { eventsMaxLen, eventsIncludePhone } = app.loginConfig
    const events: EventSink =
      redis === null ? new NoEvents() : new RedisStreamEvents(redis, keys, eventsMaxLen, eventsIncludePhone)
    const exchanges: ExchangeStore =
      redis === null ? new MemoryExchangeStore(keys) : new RedisExchangeStore(redis, keys)
    const sides = { events, exchanges }
    // Users in Redis carry a login's events and kept answer in their own write (one script).
    // The SQL store's module is loaded only with a database (see plugins/database.ts).
    const users: UserStore =
      app.database !== null
        ? new (await import('../users/sql/sql-user-store.js')).SqlUserStore(app.database, pii, sides)
        : events instanceof RedisStreamEvents && redis !== null
          ? new RedisUserStore(redis, keys, pii, events)
          : new MemoryUserStore(sides)
    const sessions: SessionStore = redis === null ? new MemorySessionStore() : new RedisSessionStore(redis, keys)
    app.decorate('users', users)
    app.decorate('sessions', sessions)
    app.decorate('exchanges', exchanges)
    const failureOpts = app.loginConfig.codeFailures
    const codeFailures: CodeFailureGuard =
      redis === null ? new MemoryCodeFailures(failureOpts) : new RedisCodeFailures(redis, keys, failureOpts)
    app.decorate('codeFailures', codeFailures)
    app.decorate('events', events)
    const jwt = app.loginConfig.jwt
    const signed =
      jwt === undefined
        ? null
        : new SignedSessions(
          await SessionJwts.create({
            keys: jwt.keys,
            issuer: jwt.issuer,
            audience: jwt.audience,
            ttlSeconds: jwt.accessTtlSeconds
          }),
          redis === null ? new MemoryRefreshStore() : new RedisRefreshStore(redis, keys),
          {
            refreshTtlSeconds: app.loginConfig.sessionTtlSeconds,
            graceSeconds: jwt.graceSeconds,
            maxPerUser: app.loginConfig.sessionsPerUserMax,
            successorKey: successorKey(jwt.keys[0] as (typeof jwt.keys)[0])
          }
        )
    app.decorate('signedSessions', signed)
    app.decorate('storeProblem', () => redis?.problem() ?? app.database?.problem())
  },
  { name: 'stores', dependencies: ['login-context', 'database'] }
)
