// The part of co-wechat-api 3.11.0 (which ships no types) that the drop-in test uses.
declare module 'co-wechat-api' {
  export default class WechatAPI {
    constructor (appid: string, appsecret: string, getToken?: () => Promise<unknown>, saveToken?: (token: unknown) => Promise<void>)
    appid: string
    appsecret: string
    /** The base of the token URL and of every /cgi-bin/ API alike. */
    prefix: string
    request (url: string, opts?: object, retry?: number): Promise<Record<string, unknown>>
    saveToken (token: unknown): Promise<void>
    getAccessToken (): Promise<{ accessToken: string, expireTime: number }>
    getIp (): Promise<{ ip_list: string[] }>
  }
}

// node-easywechat 3.6.2 ships types for its index only; these are the deep modules a user
// imports to give its AccessToken an HTTP client pointed at the broker.
declare module 'node-easywechat/dist/MiniApp/AccessToken.js' {
  export default class AccessToken {
    constructor (appId: string, secret: string, key?: string | null, cache?: unknown, httpClient?: unknown, stable?: boolean)
    getToken (): Promise<string>
    getStableAccessToken (forceRefresh?: boolean): Promise<string>
  }
}
declare module 'node-easywechat/dist/Core/HttpClient/HttpClient.js' {
  const HttpClient: { create: (config?: { baseURL?: string }) => unknown }
  export default HttpClient
}
