import fp from 'fastify-plugin'
import type { BrokerConfig } from '../config.js'
import { errors } from '../errors.js'
import { codeAnswerName, phoneAnswerName } from '../keys.js'
import { KeptAnswers, type CodeAnswer } from '../wechat/kept-answers.js'
import { parsePhoneInfo, type PhoneInfo } from '../wechat/phone-info.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** code2session answers kept for the code's life, for the same client and retry key. */
    codeAnswers: KeptAnswers<CodeAnswer>
    /** Phone numbers kept sealed for the code's life, for the same client, retry key and openid. */
    phoneAnswers: KeptAnswers<PhoneInfo>
  }
}

const codeAnswer = (v: unknown): CodeAnswer | null => {
  const r = v as { openid?: unknown, unionid?: unknown }
  if (typeof r.openid !== 'string') return null
  return { openid: r.openid, unionid: typeof r.unionid === 'string' ? r.unionid : null }
}

export default fp<{ config: BrokerConfig }>(
  async (app, { config }) => {
    // A code's claim outlives no more than its WeChat call with retries (and, for a phone number,
    // the one token recovery).
    const pendingMs = config.retryBudgetMs + config.upstreamTimeoutMs + 1000
    const store = app.credentialStores.token
    app.decorate(
      'codeAnswers',
      new KeptAnswers({
        store,
        pendingMs,
        name: codeAnswerName,
        sealed: false,
        parse: codeAnswer,
        used: () => errors.invalidCode(40163)
      })
    )
    app.decorate(
      'phoneAnswers',
      new KeptAnswers({
        store,
        pendingMs: pendingMs + config.upstreamTimeoutMs,
        name: phoneAnswerName,
        sealed: true,
        parse: v => parsePhoneInfo(v),
        used: () => errors.invalidPhoneCode(40163)
      })
    )
  },
  { name: 'kept-answers', dependencies: ['token-store'] }
)
