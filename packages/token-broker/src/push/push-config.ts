import { ConfigError, type EnvReader } from '@wxlogin/service-kit'

/** One app's message-push settings, as entered in the MP console (开发管理 → 开发设置 → 消息推送). */
export interface PushApp {
  /** The console's Token: signs every push. */
  token: string
  /** The console's EncodingAESKey, decoded (32 bytes): compatible and safe modes; absent: plaintext only. */
  aesKey?: Buffer
}

export interface PushConfig {
  /** PUSH_PORT: the listener WeChat pushes to (it faces the internet; it serves nothing else). Unset: off. */
  port?: number
  apps: Map<string, PushApp>
  /** A message received and not acknowledged within this is delivered again. */
  visibilityMs: number
  /** How long messages are kept for clients to receive. */
  retentionMs: number
}

/** The console's Token: 3 to 32 letters and digits. */
const TOKEN = /^[A-Za-z0-9]{3,32}$/
/** The console's EncodingAESKey: 43 characters of base64 (the '=' WeChat leaves off). */
const AES_KEY = /^[A-Za-z0-9+/]{43}$/

function pushApp (name: string, token: unknown, aesKey: unknown): PushApp {
  if (typeof token !== 'string' || !TOKEN.test(token)) {
    throw new ConfigError(name, "needs a push token of 3 to 32 letters and digits (the console's Token)")
  }
  if (aesKey === undefined) return { token }
  if (typeof aesKey !== 'string' || !AES_KEY.test(aesKey)) {
    throw new ConfigError(name, 'needs an EncodingAESKey of 43 base64 characters')
  }
  return { token, aesKey: Buffer.from(`${aesKey}=`, 'base64') }
}

/**
 * PUSH_PORT, and per app `push_token` / `push_aes_key` in WECHAT_APPS, or WECHAT_PUSH_TOKEN /
 * WECHAT_PUSH_AES_KEY (+ _FILE) for the single app; WECHAT_EVENTS_VISIBILITY_SECONDS and
 * WECHAT_EVENTS_RETENTION_SECONDS for delivery. Messages quote no token or key.
 */
export function readPushConfig (r: EnvReader, appids: string[]): PushConfig {
  const apps = new Map<string, PushApp>()
  const list = r.json<unknown>('WECHAT_APPS')
  if (Array.isArray(list)) {
    for (const item of list) {
      const o = item as Record<string, unknown>
      if (o.push_token === undefined && o.push_aes_key === undefined) continue
      apps.set(o.appid as string, pushApp(`WECHAT_APPS (${String(o.appid)})`, o.push_token, o.push_aes_key))
    }
  } else {
    const token = r.secret('WECHAT_PUSH_TOKEN')
    const aesKey = r.secret('WECHAT_PUSH_AES_KEY')
    if (token !== undefined || aesKey !== undefined) {
      apps.set(
        appids[0] as string,
        pushApp(token === undefined ? 'WECHAT_PUSH_TOKEN' : 'WECHAT_PUSH_AES_KEY', token, aesKey)
      )
    }
  }
  const port = r.optionalString('PUSH_PORT') === undefined ? undefined : r.port('PUSH_PORT', 0)
  if (port !== undefined && apps.size === 0) {
    throw new ConfigError(
      'PUSH_PORT',
      'is set, and no app has a push token (WECHAT_PUSH_TOKEN, or push_token in WECHAT_APPS)'
    )
  }
  return {
    ...(port === undefined ? {} : { port }),
    apps,
    visibilityMs: r.int('WECHAT_EVENTS_VISIBILITY_SECONDS', 60, { min: 1, max: 43_200 }) * 1000,
    retentionMs: r.int('WECHAT_EVENTS_RETENTION_SECONDS', 604_800, { min: 60, max: 2_592_000 }) * 1000
  }
}
