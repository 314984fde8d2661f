import { randomBytes } from 'node:crypto'

export type Api =
  | 'token'
  | 'stable_token'
  | 'jscode2session'
  | 'getuserphonenumber'
  | 'getticket'
  | 'quota_get'
  | 'rid_get'
  | 'clear_quota'
  | 'getcallbackip'
  | 'charge_usage_get'
  | 'getuserriskrank'
export const APIS: readonly Api[] = [
  'token',
  'stable_token',
  'jscode2session',
  'getuserphonenumber',
  'getticket',
  'quota_get',
  'rid_get',
  'clear_quota',
  'getcallbackip',
  'charge_usage_get',
  'getuserriskrank'
]

/** The path WeChat's quota tools know each API by. */
export const CGI_PATHS: Record<Api, string> = {
  token: '/cgi-bin/token',
  stable_token: '/cgi-bin/stable_token',
  jscode2session: '/sns/jscode2session',
  getuserphonenumber: '/wxa/business/getuserphonenumber',
  getticket: '/cgi-bin/ticket/getticket',
  quota_get: '/cgi-bin/openapi/quota/get',
  rid_get: '/cgi-bin/openapi/rid/get',
  clear_quota: '/cgi-bin/clear_quota/v2',
  getcallbackip: '/cgi-bin/getcallbackip',
  charge_usage_get: '/wxa/charge/usage/get',
  getuserriskrank: '/wxa/getuserriskrank'
}

/** What openapi/rid/get tells of a request that WeChat answered with an error. */
export interface RidRecord {
  invoke_time: number
  cost_in_ms: number
  request_url: string
  request_body: string
  response_body: string
  client_ip: string
}

export type Outcome<T> = { ok: true, value: T } | { ok: false, errcode: number }

export function rand (bytes: number): string {
  return randomBytes(bytes).toString('base64url')
}
