import type { FastifyInstance } from 'fastify'
import { storeCall } from './store-call.js'
import type { Identity } from './user-store.js'

/**
 * Everything kept of a user, except its sessions (the caller ends those last): the kept code
 * answers (they become used codes), the user record with its identities and unionid link, the
 * per-user phone limits; then a `user.deleted` event, which carries the user_id and no phone.
 */
export async function deleteAccount (app: FastifyInstance, userId: string, via: Identity): Promise<void> {
  await storeCall(app.exchanges.revokeAllOf(userId))
  const user = await storeCall(app.users.deleteUser(userId))
  const identities = user?.identities ?? [via]
  const redis = app.redis
  if (redis !== null) {
    // The phone limit's counters (plugins/phone-limit.ts keys them by app and openid).
    const prefix = `${app.loginConfig.redisKeyPrefix}ratelimit:phone:`
    await storeCall(Promise.all(identities.map(async i => await redis.cmd.del(`${prefix}${i.appid}:${i.openid}`))))
  }
  const now = new Date().toISOString()
  const gone = { user_id: userId, unionid: null, nickname: null, head_pic: null, phone: null, identities, created_at: user?.created_at ?? now, updated_at: now }
  await storeCall(app.events.emit([{ type: 'user.deleted', user: gone, ...via }]))
  app.loginMetrics.events.inc({ type: 'user.deleted' })
}
