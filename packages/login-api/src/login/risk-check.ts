import type { FastifyInstance, FastifyRequest } from 'fastify'
import { clientAddress, toServiceError } from '@wxlogin/service-kit'
import { errors } from '../errors.js'
import { storeCall } from '../store-call.js'
import type { Identity } from '../users/user-store.js'

/** getUserRiskRank's scene for a registration (1 is marketing). */
const REGISTRATION = 0

/**
 * Bots stopped at registration (LOGIN_RISK_POLICY): a login whose identity has no user yet asks
 * WeChat's risk rank through the broker. Under `enforce` a rank above LOGIN_RISK_MAX_RANK is
 * 403 high_risk_user before anything is stored; under `observe` it is counted and let in. WeChat or
 * the broker not answering never keeps a user out (counted `unavailable`). A returning user is
 * never asked: the rank is for new accounts, and a lookup costs them nothing.
 */
export async function checkRegistrationRisk (
  app: FastifyInstance,
  request: FastifyRequest,
  identity: Identity
): Promise<void> {
  const { policy, maxRank } = app.loginConfig.risk
  if (policy === 'off') return
  // A new identity (its first login in this app); one that joins a unionid's user is asked too.
  if ((await storeCall(app.users.userIdOf(identity))) !== null) return
  const metrics = app.loginMetrics.riskChecks
  let rank: number
  try {
    rank = await app.broker.userRiskRank(identity.appid, {
      openid: identity.openid,
      scene: REGISTRATION,
      clientIp: clientAddress(request.ip, request.socket.remoteAddress)
    })
  } catch (err) {
    const se = toServiceError(err)
    metrics.inc({ rank: 'unknown', action: 'unavailable' })
    request.log.warn({ error: se.code, wechat_errcode: se.wechatErrcode }, 'risk rank unavailable: the login goes on')
    return
  }
  if (rank <= maxRank) {
    metrics.inc({ rank: String(rank), action: 'allowed' })
    return
  }
  if (policy === 'observe') {
    metrics.inc({ rank: String(rank), action: 'observed' })
    request.log.info({ rank }, 'a registration above LOGIN_RISK_MAX_RANK, let in (LOGIN_RISK_POLICY=observe)')
    return
  }
  metrics.inc({ rank: String(rank), action: 'rejected' })
  request.log.info({ rank }, 'a registration above LOGIN_RISK_MAX_RANK refused (LOGIN_RISK_POLICY=enforce)')
  throw errors.highRiskUser()
}
