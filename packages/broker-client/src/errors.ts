/** An error the broker answered with, or `upstream_unavailable` when it could not be reached. */
export class BrokerError extends Error {
  constructor (
    readonly code: string,
    message: string,
    readonly statusCode: number,
    readonly wechatErrcode?: number,
    options?: { cause?: unknown }
  ) {
    super(message, options)
    this.name = 'BrokerError'
  }
}

export class BrokerUnavailableError extends BrokerError {
  /** `cause`: the HTTP client's error (an UpstreamError: a code, no URL or header) or the JSON parser's. */
  constructor (detail: string, cause?: unknown) {
    super(
      'upstream_unavailable',
      `The token broker is unavailable: ${detail}.`,
      503,
      undefined,
      cause === undefined ? undefined : { cause }
    )
    this.name = 'BrokerUnavailableError'
  }
}
