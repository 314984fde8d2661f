/**
 * Notices a caller asking again for the token it was given a moment ago: what an SDK does right
 * after WeChat answered it 40001 (co-wechat-api, WxJava, silenceper/wechat, wechatpy all re-ask
 * the token URL). A normal cache miss never looks like one: an SDK keeps a token for the
 * `expires_in` it was given, far longer than the window. Kept in this process (the hot path
 * makes no Redis call); a caller is its client name and address.
 */
export class ReaskDetector {
  private readonly last = new Map<string, { token: string, at: number }>()

  constructor (
    private readonly windowMs: number,
    private readonly maxCallers = 10_000
  ) {}

  /** Records that `caller` was served `token`; true when it was served the same one within the window. */
  served (appid: string, caller: string, token: string, now = Date.now()): boolean {
    const key = `${appid}\0${caller}`
    const prev = this.last.get(key)
    this.last.delete(key)
    this.last.set(key, { token, at: now })
    // Bounded: the oldest callers are forgotten first (a Map keeps insertion order).
    if (this.last.size > this.maxCallers) this.last.delete(this.last.keys().next().value as string)
    return prev !== undefined && prev.token === token && now - prev.at < this.windowMs
  }
}
