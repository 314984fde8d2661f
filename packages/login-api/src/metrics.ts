import { Counter, Gauge, type Registry } from 'prom-client'

export interface LoginMetrics {
  logins: Counter<'result'>
  phoneExchanges: Counter<'result'>
  rateLimited: Counter<'scope'>
  codeReuses: Counter<'kind'>
  replaysRefused: Counter
  codeFailures: Counter<'appid'>
  codeFailuresShed: Counter<'appid'>
  events: Counter<'type'>
  refreshes: Counter<'result'>
  riskChecks: Counter<'rank' | 'action'>
  wechatEvents: Counter<'event' | 'result'>
  wechatEventsLag: Gauge
}

export function createLoginMetrics (registry: Registry): LoginMetrics {
  return {
    logins: new Counter({
      name: 'login_requests_total',
      help: 'thirdLogin requests by result (ok or the error code).',
      labelNames: ['result'] as const,
      registers: [registry]
    }),
    phoneExchanges: new Counter({
      name: 'login_phone_exchanges_total',
      help: 'phoneCode exchanges WeChat answered or refused, by result; ok is what WeChat bills.',
      labelNames: ['result'] as const,
      registers: [registry]
    }),
    rateLimited: new Counter({
      name: 'login_rate_limited_total',
      help: 'Requests refused by a rate limit, by scope (ip, user).',
      labelNames: ['scope'] as const,
      registers: [registry]
    }),
    codeReuses: new Counter({
      name: 'login_code_reuses_total',
      help: "Retries answered with a code's kept exchange, no WeChat call, by kind (login, phone).",
      labelNames: ['kind'] as const,
      registers: [registry]
    }),
    replaysRefused: new Counter({
      name: 'login_code_replays_refused_total',
      help: 'Logins with a used code refused: no retry_key, another one, or more retries than a code allows.',
      registers: [registry]
    }),
    codeFailures: new Counter({
      name: 'login_code_failures_total',
      help: 'Login codes WeChat refused (40029/40163), by app: a spray of forged codes shows here.',
      labelNames: ['appid'] as const,
      registers: [registry]
    }),
    codeFailuresShed: new Counter({
      name: 'login_code_failures_shed_total',
      help:
        'Logins refused before WeChat because the app is over CODE_FAILURE_BUDGET and the client IP has failed ' +
        'itself.',
      labelNames: ['appid'] as const,
      registers: [registry]
    }),
    events: new Counter({
      name: 'login_events_total',
      help: 'Login events written to the Redis Stream, by type.',
      labelNames: ['type'] as const,
      registers: [registry]
    }),
    wechatEvents: new Counter({
      name: 'login_wechat_events_total',
      help:
        "WeChat's pushes received from the broker, by event and result: applied, unknown_user (acknowledged, " +
        'nothing to do), ignored (an event or withdrawal the login-api keeps nothing of), failed (delivered again).',
      labelNames: ['event', 'result'] as const,
      registers: [registry]
    }),
    wechatEventsLag: new Gauge({
      name: 'login_wechat_events_lag_seconds',
      help: "Seconds between WeChat's CreateTime of the last push applied and its application.",
      registers: [registry]
    }),
    riskChecks: new Counter({
      name: 'login_risk_checks_total',
      help:
        "getUserRiskRank asked for logins that would create a user (LOGIN_RISK_POLICY), by WeChat's rank and " +
        'action: allowed, observed (over the maximum, let in under observe), rejected (enforce), unavailable (WeChat ' +
        'or the broker did not answer: let in).',
      labelNames: ['rank', 'action'] as const,
      registers: [registry]
    }),
    refreshes: new Counter({
      name: 'login_token_refreshes_total',
      help:
        'POST /api/user/token/refresh by result: rotated, grace (a repeat within the grace), reuse (a spent ' +
        'token: its family revoked), unknown, conflict.',
      labelNames: ['result'] as const,
      registers: [registry]
    })
  }
}
