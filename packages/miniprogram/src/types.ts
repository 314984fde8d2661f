// What @wxlogin/miniprogram takes and gives, as types (erased when built).

export type Callbacks<T> = {
  success?: (res: T) => void
  fail?: (err: { errMsg: string, errno?: number }) => void
}
/** A request as `client.request` takes it (`url` starting with `/`: relative to baseUrl). */
export interface RequestOptions { url: string, method?: string, data?: unknown, header?: Record<string, string> }
export interface RequestAnswer { statusCode: number, data: any, header: Record<string, string> }

/** What the client uses of `wx` (Taro and uni-app offer the same calls). */
export interface WxApi {
  login: (opts: Callbacks<{ code: string }> & { timeout?: number }) => void
  request: (opts: Callbacks<RequestAnswer> & RequestOptions & { timeout?: number }) => void
  getStorageSync: (key: string) => any
  setStorageSync: (key: string, value: any) => void
  removeStorageSync: (key: string) => void
  getRandomValues?: (opts: Callbacks<{ randomValues: ArrayBuffer }> & { length: number }) => void
}

export interface RetryOptions {
  /** Attempts with the same codes, the first included (default 5). */
  attempts?: number
  /** The first pause; each next one doubles (default 500 ms). */
  baseDelayMs?: number
  /** A 429 whose Retry-After is at most this is waited out (default 10 s); a longer one rejects. */
  maxRetryAfterMs?: number
}

export interface ClientOptions {
  baseUrl: string
  appid?: string
  api?: WxApi
  storageKey?: string
  timeoutMs?: number
  retry?: RetryOptions
}

export interface StoredSession {
  token: string
  expiresAt: number
  user: any
  refreshToken?: string
  refreshExpiresAt?: number
}

export type PhoneCodeResult =
  | { code: string }
  | { error: 'user_denied' | 'no_quota' | 'failed', errno?: number, errMsg?: string }

/** A `bindgetphonenumber` or `bindgetrealtimephonenumber` event, as the client reads it. */
export type PhoneEvent = { detail?: { code?: string, errMsg?: string, errno?: number } }

export interface LoginClient {
  login: (opts?: { phoneCode?: string, nickname?: string, head_pic?: string }) => Promise<any>
  bindPhone: (phoneCode: string) => Promise<any>
  request: (opts: RequestOptions) => Promise<RequestAnswer>
  session: () => StoredSession | null
  /**
   * Whether to show the phone button: true without a session, or while the user has no phone
   * WeChat verified (`user.phone_verified_at`). Each successful tap is billed, so a page logs in
   * first (wx.login is free) and asks for the phone only when this is true.
   */
  needsPhone: () => boolean
  logout: (opts?: { all?: boolean }) => Promise<void>
  phoneCodeFrom: (event: PhoneEvent) => PhoneCodeResult
}
