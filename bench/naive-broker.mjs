// Scenario 2's comparison: the getAccessToken snippet most teams copy, as they deploy it on each
// replica: read the cache; on a miss, fetch /cgi-bin/token and store it. No lock, no single flight.
import Fastify from 'fastify'
import got from 'got'
import { createClient } from 'redis'

const redis = createClient({ url: process.env.REDIS_URL })
redis.on('error', () => {})
await redis.connect()
const base = process.env.WECHAT_API_BASE_URL
const appid = process.env.WECHAT_APPID
const secret = process.env.WECHAT_SECRET
const app = Fastify({ logger: false })

app.get('/token', async () => {
  const cacheKey = `wechat_access_token_${appid}`
  const cached = await redis.get(cacheKey)
  if (cached) return { access_token: cached }
  const res = await got(`${base}/cgi-bin/token`, { searchParams: { grant_type: 'client_credential', appid, secret }, retry: { limit: 0 } }).json()
  if (res.access_token) {
    await redis.set(cacheKey, res.access_token, { EX: 7000 })
    return { access_token: res.access_token }
  }
  throw new Error('no token')
})
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) })
