import type { FastifyInstance } from 'fastify'
import { storeCall } from '../store-call.js'
import type { Identity } from './user-store.js'

/** Each identity once: the session's own, and every one the user record names. */
export function uniqueIdentities (identities: Identity[]): Identity[] {
  const seen = new Map(identities.map(i => [`${i.appid}\0${i.openid}`, i]))
  return [...seen.values()]
}

/**
 * Everything kept of a user, except its sessions (the caller ends those last): the kept code
 * answers (they become used codes), the user record with its identities and unionid link, the
 * per-user phone limits; then a `user.deleted` event, which carries the user_id and no phone.
 * Nothing sealed is opened on the way: a record under a key since removed is deleted all the same.
 * `known`: the user's identities as the caller read them (the session's own among them).
 */
export async function deleteAccount (
  app: FastifyInstance,
  userId: string,
  via: Identity,
  known: Identity[],
  reason?: string
): Promise<void> {
  await storeCall(app.exchanges.revokeAllOf(known))
  const user = await storeCall(app.users.deleteUser(userId))
  const identities = uniqueIdentities([via, ...known, ...(user?.identities ?? [])])
  await storeCall(app.exchanges.dropCounters(identities.map(i => app.loginKeys.phoneCounter(i.appid, i.openid))))
  const now = new Date().toISOString()
  const gone = {
    user_id: userId,
    unionid: null,
    nickname: null,
    head_pic: null,
    phone: null,
    phone_verified_at: null,
    identities,
    created_at: user?.created_at ?? now,
    updated_at: now
  }
  await storeCall(
    app.events.emit([{ type: 'user.deleted', user: gone, ...via, ...(reason === undefined ? {} : { reason }) }])
  )
  app.loginMetrics.events.inc({ type: 'user.deleted' })
}
