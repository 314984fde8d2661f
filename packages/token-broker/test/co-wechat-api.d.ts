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
