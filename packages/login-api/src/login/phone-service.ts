import { BrokerError, type BrokerClient } from '@wxlogin/broker-client'
import { sha256Hex, type ServiceError } from '@wxlogin/service-kit'
import { errors } from '../errors.js'
import type { PhoneInfo } from '../users/user-store.js'

export function brokerFailure (err: unknown): ServiceError {
  if (err instanceof BrokerError) {
    return errors.upstreamUnavailable(
      'the token service',
      `the token broker answered ${err.statusCode} ${err.code}: ${err.message}`,
      err.wechatErrcode,
      err
    )
  }
  return errors.upstreamUnavailable(
    'the token service',
    `the token broker cannot be reached: ${err instanceof Error ? err.message : 'error'}`,
    undefined,
    err
  )
}

/**
 * getuserphonenumber, at the broker: where it is billed, with the app's token (the login-api
 * holds none), once per code cluster-wide. `exchangeKey` names this exchange in the login-api's
 * own store (a hash of the app, the openid and the code): its SHA-256 is the retry key the broker
 * keeps the number under, the same on every instance, so an instance that takes over after
 * another died mid-exchange gets the number WeChat already billed instead of a used code.
 */
export class PhoneService {
  constructor (private readonly broker: BrokerClient) {}

  async exchange (appid: string, openid: string, phoneCode: string, exchangeKey: string): Promise<PhoneInfo> {
    try {
      return await this.broker.phoneNumber(appid, phoneCode, { openid, retryKeySha256: sha256Hex(exchangeKey) })
    } catch (err) {
      if (err instanceof BrokerError) {
        switch (err.code) {
          // The phone code itself is bad: the user has to tap the button again.
          case 'invalid_phone_code':
            throw errors.invalidPhoneCode(err.wechatErrcode)
          // WeChat's 45011: too frequent for this app.
          case 'rate_limited':
            throw errors.rateLimited(60, err.wechatErrcode)
          // Another instance's exchange of this code is still running at the broker.
          case 'exchange_in_progress':
            throw errors.exchangeInProgress()
        }
      }
      throw brokerFailure(err)
    }
  }
}
