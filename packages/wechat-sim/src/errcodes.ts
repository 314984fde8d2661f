/** WeChat's errmsg for each errcode the simulator answers with (texts as WeChat sends them). */
export const ERRMSG: Record<number, string> = {
  [-1]: 'system error',
  0: 'ok',
  40001: 'invalid credential, access_token is invalid or not latest',
  40002: 'invalid grant_type',
  40013: 'invalid appid',
  40029: 'invalid code',
  40125: 'invalid appsecret',
  40163: 'code been used',
  40226: 'high risk user',
  41001: 'access_token missing',
  41002: 'appid missing',
  41004: 'appsecret missing',
  41008: 'missing code',
  42001: 'access_token expired',
  45009: 'reach max api daily quota limit',
  45011: 'api minute-quota reach limit mustslower retry next minute',
  47001: 'data format error',
  40097: 'invalid args',
  48006: 'forbid to clear quota because of reaching the limit',
  76001: 'rid not found',
  76003: 'cgi_path not found'
}

export function wxError (errcode: number): { errcode: number, errmsg: string } {
  return { errcode, errmsg: ERRMSG[errcode] ?? 'error' }
}
