import { APPID } from '@wxlogin/service-kit'
import { errors } from '../errors.js'

/**
 * WeChat sets this Referer on a mini-program's requests; a browser or a script could send
 * anything, so it only picks among the apps this service serves (it grants nothing).
 */
const MINI_PROGRAM_REFERER = /^https:\/\/servicewechat\.com\/([^/]+)\/[^/]*\/page-frame\.html$/

/**
 * The mini-program a login is for: the body's `appid`, else WeChat's Referer, else the only app
 * served. An app not served is 400 unknown_app.
 */
export function resolveApp (
  apps: readonly string[],
  bodyAppid: string | undefined,
  referer: string | undefined
): string {
  if (bodyAppid !== undefined && bodyAppid !== '') {
    if (!apps.includes(bodyAppid)) throw errors.unknownApp('appid is not one of LOGIN_APPS')
    return bodyAppid
  }
  const fromReferer = referer === undefined ? undefined : MINI_PROGRAM_REFERER.exec(referer)?.[1]
  if (fromReferer !== undefined && APPID.test(fromReferer)) {
    if (!apps.includes(fromReferer)) throw errors.unknownApp('the Referer names an app not in LOGIN_APPS')
    return fromReferer
  }
  if (apps.length === 1) return apps[0] as string
  throw errors.unknownApp('name the app: "appid" in the body, or the Referer WeChat sets')
}
