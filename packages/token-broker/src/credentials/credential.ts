import type { FastifyBaseLogger } from 'fastify'
import type { WechatAppConfig } from '../config.js'
import type { BrokerMetrics, CredentialMetrics, TokenSource } from '../metrics.js'
import type { RefreshLock } from '../store/refresh-lock.js'
import type { TokenRecord, TokenStore } from '../store/token-store.js'
import type { FetchedToken } from '../wechat/wechat-client.js'

export interface ServedToken {
  record: TokenRecord
  source: TokenSource
}

/** What a manager keeps warm: the access_token, or a ticket that is fetched with it. */
export interface Credential {
  /** 'token', 'ticket:jsapi', 'ticket:wx_card': in logs, lock and key names. */
  kind: string
  /** One upstream fetch; `force` asks WeChat for a new value (stable_token's force_refresh). */
  fetch: (app: WechatAppConfig, force: boolean) => Promise<FetchedToken>
  /** This kind's counters: served by source, refreshes by reason and result, expiry. */
  metrics: CredentialMetrics
}

export interface TokenManagerOptions {
  apps: WechatAppConfig[]
  credential: Credential
  store: TokenStore
  lock: RefreshLock
  /** Lock waits and the invalidation budget. */
  metrics: BrokerMetrics
  log: FastifyBaseLogger
  refreshAheadMs: number
  failureMemoryMs: number
  /** How long a caller waits for another replica's refresh before giving up. */
  waitTimeoutMs: number
  /** Least time between two refreshes caused by invalidations of one app, cluster-wide. */
  forceRefreshIntervalMs: number
  /** Refreshes caused by invalidations, per app and WeChat day, cluster-wide. */
  invalidationBudget: { stable: number, classic: number }
  /** The broker's clients: each one that may use an app gets an equal share of its budget. */
  clients: Array<{ name: string, apps: string[] }>
}
