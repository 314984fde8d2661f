import { ServiceError } from '@wxlogin/service-kit'
import type { WechatAppConfig } from '../config.js'
import { errors } from '../errors.js'
import type { RefreshReason } from '../metrics.js'
import type { TokenRecord, TokenStore } from '../store/token-store.js'
import type { TokenManagerOptions } from './credential.js'
import type { FailureMemory } from './failure-memory.js'
import type { InvalidationBudget } from './invalidation-budget.js'

/** One refresh's call to WeChat: what it is for, and what the token manager lends it. */
export interface UpstreamFetch {
  app: WechatAppConfig
  reason: RefreshReason
  /** The token a caller reported rejected (an invalidation), if any. */
  stale: string | undefined
  client: string | undefined
  /** What this replica holds now (WeChat handing it back does not make it newer). */
  previous: TokenRecord | undefined
  kind: string
  opts: TokenManagerOptions
  failures: FailureMemory
  budget: InvalidationBudget
}

/**
 * A new value from WeChat, stored for every replica (unless a newer one won meanwhile: then
 * that one). A failure is remembered for a few seconds per app, so a wrong secret cannot hammer
 * WeChat; an invalidation spends the caller's share of the daily budget.
 */
export async function fetchFromWechat (ctx: UpstreamFetch): Promise<TokenRecord> {
  const { app, reason, client, previous, kind, opts, failures, budget } = ctx
  const { appid } = app
  const remembered = await failures.recall(appid)
  if (remembered !== null) throw remembered

  const { store, log } = opts
  const seq = await nextSeq(store, appid)
  // A stable token survives a normal-mode call: a rejected one can only be replaced by force.
  const force = reason === 'invalidated' && app.tokenMode === 'stable'
  const requestedAt = Date.now()
  const sibling = force ? await siblingsToken(ctx) : undefined
  if (sibling === undefined && reason === 'invalidated') await budget.allow(app, client)
  let rec: TokenRecord
  try {
    const fetched = sibling ?? (await opts.credential.fetch(app, force))
    // WeChat handing back the token we hold (stable mode, normal call) does not make it newer.
    const fetchedAt = previous?.token === fetched.token ? (previous.fetchedAt ?? requestedAt) : requestedAt
    rec = { token: fetched.token, expiresAt: requestedAt + fetched.expiresInSeconds * 1000, seq, fetchedAt }
  } catch (err) {
    const error = err instanceof ServiceError ? err : errors.upstreamUnavailable('unexpected error', undefined, err)
    opts.credential.metrics.refreshed(appid, reason, 'error')
    log.error({ appid, kind, reason, error: error.code, wechat_errcode: error.wechatErrcode }, 'refresh failed')
    await failures.remember(appid, error)
    throw error
  }
  failures.forget(appid)
  opts.credential.metrics.refreshed(appid, reason, 'ok')
  const expiresInSeconds = Math.round((rec.expiresAt - requestedAt) / 1000)
  log.info({ appid, kind, reason, expiresInSeconds }, 'refreshed')
  if (!store.available()) return rec
  try {
    const accepted = await store.setIfNewer(appid, rec)
    // A newer refresh won while ours was in flight: serve its token, not ours.
    if (!accepted) rec = (await store.get(appid)) ?? rec
    await store.publish(appid)
  } catch {
    log.warn({ appid, kind }, 'could not store the refreshed value in Redis; serving it from memory')
  }
  return rec
}

/** The store's sequence number for a new value; the clock when the store cannot answer. */
async function nextSeq (store: TokenStore, appid: string): Promise<number> {
  try {
    return store.available() ? await store.nextSeq(appid) : Date.now()
  } catch {
    return Date.now()
  }
}

/**
 * With the shared store unreachable this replica cannot see a sibling's refresh, but WeChat can:
 * a normal-mode stable_token call answers WeChat's current token, where forcing would invalidate
 * a sibling's fresh one (or meet 45011, too soon after its force). That token when it is not the
 * rejected one; otherwise (or if the call fails) undefined, and the caller forces as before.
 */
async function siblingsToken (ctx: UpstreamFetch): Promise<{ token: string, expiresInSeconds: number } | undefined> {
  const { app, stale, opts } = ctx
  if (stale === undefined || !opts.store.shared || opts.store.available()) return undefined
  const current = await opts.credential.fetch(app, false).catch(() => undefined)
  return current !== undefined && current.token !== stale ? current : undefined
}
