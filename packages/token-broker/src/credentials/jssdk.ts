import { createHash, randomBytes } from 'node:crypto'

export interface JssdkConfig {
  appId: string
  timestamp: number
  nonceStr: string
  signature: string
}

/**
 * WeChat's JS-SDK signature: SHA-1 over the four fields in ASCII order of their names, joined as
 * a query string with nothing escaped. `url` is the page's URL as the browser has it, without
 * its #fragment; any other change (re-encoding, a trailing slash) makes wx.config fail.
 */
export function jssdkSignature (fields: { ticket: string, nonceStr: string, timestamp: number, url: string }): string {
  const { ticket, nonceStr, timestamp, url } = fields
  const plain = `jsapi_ticket=${ticket}&noncestr=${nonceStr}&timestamp=${timestamp}&url=${url}`
  return createHash('sha1').update(plain, 'utf8').digest('hex')
}

/** The page URL as signed: everything before the first '#'. */
export function pageUrlForSignature (url: string): string {
  const hash = url.indexOf('#')
  return hash === -1 ? url : url.slice(0, hash)
}

export function jssdkConfig (appId: string, ticket: string, url: string, now = Date.now()): JssdkConfig {
  const nonceStr = randomBytes(12).toString('base64url')
  const timestamp = Math.floor(now / 1000)
  return {
    appId,
    timestamp,
    nonceStr,
    signature: jssdkSignature({ ticket, nonceStr, timestamp, url: pageUrlForSignature(url) })
  }
}
