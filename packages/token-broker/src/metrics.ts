import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { createWechatApiMetrics, type WechatApiMetrics } from '@wxlogin/service-kit'

export type TokenSource = 'memory' | 'redis' | 'upstream'
export type RefreshReason = 'miss' | 'ahead' | 'invalidated'

/** One credential kind's counters: served by source, refreshes by reason and result, expiry. */
export interface CredentialMetrics {
  served: (appid: string, source: TokenSource) => { inc: () => void }
  refreshed: (appid: string, reason: RefreshReason, result: 'ok' | 'error') => void
  expiry: (appid: string, unixSeconds: number) => void
}

export interface BrokerMetrics {
  wechat: WechatApiMetrics
  tokenRequests: Counter<'appid' | 'source'>
  refreshes: Counter<'appid' | 'reason' | 'result'>
  expiry: Gauge<'appid'>
  lockWait: Histogram
  budgetUsed: Gauge<'appid'>
  budgetLimit: Gauge<'appid'>
  ticketRequests: Counter<'appid' | 'type' | 'source'>
  ticketRefreshes: Counter<'appid' | 'type' | 'reason' | 'result'>
  ticketExpiry: Gauge<'appid' | 'type'>
  upstreamTokenCalls: Counter<'appid' | 'api' | 'force'>
  quotaClears: Counter<'appid' | 'result'>
  authFailures: Counter<'route' | 'errcode'>
  verifications: Counter<'appid' | 'result'>
  phoneExchanges: Counter<'appid' | 'result'>
  pushMessages: Counter<'appid' | 'result'>
  gatewayRequests: Counter<'client' | 'api' | 'result'>
  chargeUsed: Gauge<'appid' | 'spu'>
  chargeTotal: Gauge<'appid' | 'spu'>
}

/** The access_token's counters, as a manager of one credential kind sees them. */
export function tokenMetrics (m: BrokerMetrics): CredentialMetrics {
  return {
    served: (appid, source) => m.tokenRequests.labels({ appid, source }),
    refreshed: (appid, reason, result) => {
      m.refreshes.inc({ appid, reason, result })
    },
    expiry: (appid, seconds) => {
      m.expiry.set({ appid }, seconds)
    }
  }
}

export function ticketMetrics (m: BrokerMetrics, type: string): CredentialMetrics {
  return {
    served: (appid, source) => m.ticketRequests.labels({ appid, type, source }),
    refreshed: (appid, reason, result) => {
      m.ticketRefreshes.inc({ appid, type, reason, result })
    },
    expiry: (appid, seconds) => {
      m.ticketExpiry.set({ appid, type }, seconds)
    }
  }
}

export function createBrokerMetrics (registry: Registry): BrokerMetrics {
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> =>
    new Counter({ name, help, labelNames, registers: [registry] })
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]): Gauge<L> =>
    new Gauge({ name, help, labelNames, registers: [registry] })
  return {
    wechat: createWechatApiMetrics(registry),
    tokenRequests: counter('token_broker_token_requests_total', 'access_tokens served, by where they came from.', [
      'appid',
      'source'
    ]),
    refreshes: counter(
      'token_broker_refreshes_total',
      'Upstream token refreshes this replica made, by reason and result.',
      ['appid', 'reason', 'result']
    ),
    expiry: gauge(
      'token_broker_token_expiry_timestamp_seconds',
      'When the access_token this replica holds expires (Unix seconds).',
      ['appid']
    ),
    lockWait: new Histogram({
      name: 'token_broker_lock_wait_seconds',
      help: "Time a refresh waited for the cluster-wide lock or for another replica's token.",
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry]
    }),
    budgetUsed: gauge(
      'token_broker_invalidation_budget_used',
      "Refreshes caused by invalidations today (WeChat's day, UTC+8), cluster-wide, as this replica last counted them.",
      ['appid']
    ),
    budgetLimit: gauge(
      'token_broker_invalidation_budget_limit',
      'Refreshes caused by invalidations allowed per app and day (TOKEN_INVALIDATION_DAILY_BUDGET).',
      ['appid']
    ),
    ticketRequests: counter(
      'token_broker_ticket_requests_total',
      'JS-SDK and card tickets served, by type and where they came from.',
      ['appid', 'type', 'source']
    ),
    ticketRefreshes: counter(
      'token_broker_ticket_refreshes_total',
      'Upstream ticket fetches this replica made, by type, reason and result.',
      ['appid', 'type', 'reason', 'result']
    ),
    ticketExpiry: gauge(
      'token_broker_ticket_expiry_timestamp_seconds',
      'When the ticket this replica holds expires (Unix seconds).',
      ['appid', 'type']
    ),
    upstreamTokenCalls: counter(
      'token_broker_upstream_token_calls_total',
      "Calls this replica made to WeChat's token endpoints (each counts against that endpoint's daily quota), by api " +
        'and force_refresh.',
      ['appid', 'api', 'force']
    ),
    quotaClears: counter(
      'token_broker_quota_clears_total',
      'clear_quota calls (WeChat allows 10 a month), by result.',
      ['appid', 'result']
    ),
    verifications: counter(
      'token_broker_verifications_total',
      'Checks with WeChat (getcallbackip) of a token a caller may hold dead, by result: valid, invalid, unknown ' +
        "(WeChat did not say), shared_* (another replica's verdict), skipped (no verdict in time).",
      ['appid', 'result']
    ),
    phoneExchanges: counter(
      'token_broker_phone_exchanges_total',
      'Phone-number exchanges (getuserphonenumber), by result: ok (WeChat answered a number: billed), kept (a retry ' +
        'answered from the kept number: not billed again), or the error code answered.',
      ['appid', 'result']
    ),
    gatewayRequests: counter(
      'token_broker_gateway_requests_total',
      "Calls through the WeChat API gateway, by client, the matched apis entry and result: ok, WeChat's errcode, " +
        'http_<status>, timeout, network_error, forbidden (not in the client\'s apis).',
      ['client', 'api', 'result']
    ),
    pushMessages: counter(
      'token_broker_push_messages_total',
      "WeChat's pushes on PUSH_PORT, by result: stored, duplicate (a resend of one stored), bad_signature, " +
        'bad_request (stale timestamp, not decrypting, not a push), store_unavailable (not answered success: WeChat ' +
        'resends).',
      ['appid', 'result']
    ),
    chargeUsed: gauge(
      'wechat_charge_quota_used',
      "A paid capability's quota used this period, by spu, as WeChat's /wxa/charge/usage/get reports it.",
      ['appid', 'spu']
    ),
    chargeTotal: gauge(
      'wechat_charge_quota_total',
      "A paid capability's quota bought (and the free trial) this period, by spu, from /wxa/charge/usage/get.",
      ['appid', 'spu']
    ),
    authFailures: counter(
      'token_broker_auth_failures_total',
      "Callers refused for their client token or app, by route and errcode (WeChat's on /cgi-bin routes: 40125, " +
        '40013, ...; unauthorized or forbidden on /v1).',
      ['route', 'errcode']
    )
  }
}
