/** An error the broker answered with, or `upstream_unavailable` when it could not be reached. */
export class BrokerError extends Error {
  constructor (
    readonly code: string,
    message: string,
    readonly statusCode: number,
    readonly wechatErrcode?: number
  ) {
    super(message)
    this.name = 'BrokerError'
  }
}

export class BrokerUnavailableError extends BrokerError {
  constructor (detail: string) {
    super('upstream_unavailable', `The token broker is unavailable: ${detail}.`, 503)
    this.name = 'BrokerUnavailableError'
  }
}
