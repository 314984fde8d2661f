import type { FastifyInstance } from 'fastify'
import type { WechatEvent } from '@wxlogin/broker-client'
import { storeCall } from '../store-call.js'
import { deleteAccount, uniqueIdentities } from '../users/account-deletion.js'
import type { Forgotten, Identity } from '../users/user-store.js'
import type { LoginEventType } from './events.js'

export type Applied = 'applied' | 'unknown_user' | 'ignored'

/** RevokeInfo values (WeChat's list) and what the login-api keeps of each. */
const PHONE = '8'
const PROFILE = new Set(['6', '19', '20'])

/** What a push asks of the user record; null: the login-api keeps nothing it concerns. */
function asked (e: WechatEvent): Forgotten[] | 'delete' | null {
  switch (e.event) {
    case 'user_authorization_revoke': {
      // One value, or a list (of digits) to be safe.
      const infos = String(e.message.RevokeInfo ?? '')
        .split(/\D+/)
        .filter(s => s !== '')
      const what: Forgotten[] = []
      if (infos.includes(PHONE)) what.push('phone')
      if (infos.some(i => PROFILE.has(i))) what.push('profile')
      return what.length > 0 ? what : null
    }
    // WeChat cleaned a risky profile: the nickname and avatar it had are not to be kept.
    case 'user_info_modified':
      return ['profile']
    case 'user_authorization_cancellation':
      return 'delete'
    default:
      return null
  }
}

const EVENT_OF: Record<Forgotten, LoginEventType> = { phone: 'user.phone_revoked', profile: 'user.profile_revoked' }

/**
 * One of WeChat's pushes honoured, idempotently (it may come again): a phone withdrawal removes the
 * phone, a profile withdrawal or a cleaned profile the nickname and avatar, a cancellation deletes
 * the account as DELETE /api/user/me does (sessions and refresh families included); each writes its
 * event. Nothing sealed is opened on the way. A user the login-api does not know is nothing to do.
 */
export async function applyWechatEvent (app: FastifyInstance, e: WechatEvent): Promise<Applied> {
  const what = asked(e)
  if (what === null || !app.loginConfig.apps.includes(e.appid)) return 'ignored'
  const identity: Identity = { appid: e.appid, openid: e.openid }
  const userId = await storeCall(app.users.userIdOf(identity))
  if (userId === null) return 'unknown_user'
  if (what === 'delete') {
    const known = uniqueIdentities([identity, ...(await storeCall(app.users.identitiesOf(userId)))])
    await deleteAccount(app, userId, identity, known, 'wechat_cancellation')
    await storeCall(app.sessions.deleteAllOf(userId))
    await storeCall(app.signedSessions?.revokeAllOf(userId) ?? Promise.resolve(0))
    return 'applied'
  }
  for (const field of what) {
    const user = await storeCall(app.users.forget(userId, field))
    if (user === null) return 'unknown_user'
    const type = EVENT_OF[field]
    await storeCall(app.events.emit([{ type, user, ...identity }]))
    app.loginMetrics.events.inc({ type })
  }
  return 'applied'
}
