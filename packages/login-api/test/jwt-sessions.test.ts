// SESSION_FORMAT=jwt in one process (memory stores): access tokens that a stock library verifies
// against the published JWKS, every refusal, key rotation, refresh rotation and reuse detection,
// logout and its limits. Redis, two instances and a failover: jwt-redis.test.ts.
import t, { type Test } from 'tap'
import { createHmac, createPublicKey, type JsonWebKey } from 'node:crypto'
import jsonwebtoken from 'jsonwebtoken'
import { importJWK, SignJWT } from 'jose'
import type { FastifyInstance } from 'fastify'
import { APPID, broker, build, jwtConfig, login, metricValue, signingKeysText, useNock } from './helper.js'
import { loadConfig } from '../src/config.js'
import { hashSessionToken } from '../src/sessions/session-tokens.js'

const ISS = 'https://login.test'
const AUD = 'wxlogin-test'

/** Verified as another service would: jsonwebtoken, the key picked by kid from the published JWKS. */
async function verifyElsewhere (app: FastifyInstance, token: string): Promise<jsonwebtoken.JwtPayload> {
  const jwks = (await app.inject('/.well-known/jwks.json')).json() as { keys: Array<JsonWebKey & { kid: string }> }
  const { header } = jsonwebtoken.decode(token, { complete: true }) as jsonwebtoken.Jwt
  const jwk = jwks.keys.find(k => k.kid === header.kid)
  if (jwk === undefined) throw new Error(`no key ${String(header.kid)} in the JWKS`)
  return jsonwebtoken.verify(token, createPublicKey({ key: jwk, format: 'jwk' }), { algorithms: ['ES256'], issuer: ISS, audience: AUD }) as jsonwebtoken.JwtPayload
}

const me = async (app: FastifyInstance, token: string): Promise<number> =>
  (await app.inject({ method: 'GET', url: '/api/user/me', headers: { authorization: `Bearer ${token}` } })).statusCode
const gateway = async (app: FastifyInstance, token: string): Promise<number> =>
  (await app.inject({ method: 'GET', url: '/api/user/session', headers: { authorization: `Bearer ${token}` } })).statusCode
const refresh = async (app: FastifyInstance, refreshToken: string): Promise<{ statusCode: number, json: () => any }> =>
  await app.inject({ method: 'POST', url: '/api/user/token/refresh', payload: { refresh_token: refreshToken } })

async function jwtApp (t: Test, keys = signingKeysText({ kid: 'k1' }), jwt = {}): Promise<{ app: FastifyInstance, logs: Awaited<ReturnType<typeof build>>['logs'], signIn: (openid: string) => Promise<any> }> {
  const nock = useNock(t)
  const { app, logs } = await build(t, jwtConfig(keys, {}, jwt))
  let n = 0
  const signIn = async (openid: string): Promise<any> => {
    const code = `code-${openid}-${n++}`
    broker.session(nock, code, openid, `union-${openid}`)
    const res = await login(app, { code })
    t.equal(res.statusCode, 200, `${openid} logs in`)
    return res.json()
  }
  return { app, logs, signIn }
}

t.test('thirdLogin answers a JWT a stock library verifies with the JWKS, and a refresh token', async t => {
  const { app, logs, signIn } = await jwtApp(t)
  const body = await signIn('openid-jwt')
  t.equal(body.expires_in, 900, 'expires_in is the access token\'s life')
  t.match(body.refresh_token, /^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/)
  const claims = await verifyElsewhere(app, body.token)
  t.match(claims, { sub: body.user.user_id, appid: APPID, openid: 'openid-jwt', iss: ISS, aud: AUD })
  t.equal((claims.exp as number) - (claims.iat as number), 900)
  t.equal((jsonwebtoken.decode(body.token, { complete: true }) as jsonwebtoken.Jwt).header.kid, 'k1')

  const jwks = await app.inject('/.well-known/jwks.json')
  t.equal(jwks.statusCode, 200)
  t.match(jwks.headers['cache-control'], /public, max-age=\d+/)
  for (const k of jwks.json().keys) t.notOk('d' in k, 'public keys only')
  t.match(jwks.json().keys, [{ kty: 'EC', crv: 'P-256', kid: 'k1', alg: 'ES256', use: 'sig' }])

  t.equal(await me(app, body.token), 200, '/me takes the JWT')
  const gw = await app.inject({ method: 'GET', url: '/api/user/session', headers: { authorization: `Bearer ${body.token as string}` } })
  t.equal(gw.statusCode, 200)
  t.equal(gw.headers['x-user-id'], body.user.user_id)
  t.notOk(logs.text().includes(body.refresh_token), 'the refresh token is never logged')
  t.notOk(logs.text().includes(body.token.split('.')[2]), 'nor the access token')
})

t.test('EdDSA keys work as well (verified by jose through the routes)', async t => {
  const { app, signIn } = await jwtApp(t, signingKeysText({ kid: 'ed1', alg: 'EdDSA' }))
  const body = await signIn('openid-ed')
  t.equal((jsonwebtoken.decode(body.token, { complete: true }) as jsonwebtoken.Jwt).header.alg, 'EdDSA')
  t.equal(await me(app, body.token), 200)
  t.match((await app.inject('/.well-known/jwks.json')).json().keys, [{ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', kid: 'ed1' }])
})

t.test('refused: alg none, HMAC keyed with the public key, unknown kid, wrong iss or aud, expired, tampered', async t => {
  const keys = signingKeysText({ kid: 'k1' })
  const { app, signIn } = await jwtApp(t, keys)
  const body = await signIn('openid-forge')
  const [h, p] = (body.token as string).split('.') as [string, string]
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>
  const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url')
  const privateJwk = (JSON.parse(keys) as { keys: JsonWebKey[] }).keys[0] as JsonWebKey
  const signWith = async (claims: Record<string, unknown>, header: Record<string, unknown> = { alg: 'ES256', kid: 'k1' }, jwk: JsonWebKey = privateJwk): Promise<string> =>
    await new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(await importJWK(jwk as Parameters<typeof importJWK>[0], 'ES256'))

  const publicPem = createPublicKey({ key: privateJwk, format: 'jwk' }).export({ format: 'pem', type: 'spki' }).toString()
  const hmacInput = `${b64({ alg: 'HS256', kid: 'k1', typ: 'JWT' })}.${p}`
  const forgeries: Record<string, string> = {
    'alg none': `${b64({ alg: 'none', typ: 'JWT' })}.${p}.AAAA`,
    'alg none, no signature': `${b64({ alg: 'none', typ: 'JWT' })}.${p}.`,
    'HS256 keyed with the public key': `${hmacInput}.${createHmac('sha256', publicPem).update(hmacInput).digest('base64url')}`,
    'unknown kid': await signWith(payload, { alg: 'ES256', kid: 'stranger' }, (JSON.parse(signingKeysText({ kid: 'stranger' })) as { keys: JsonWebKey[] }).keys[0] as JsonWebKey),
    'a known kid, signed by another key': await signWith(payload, { alg: 'ES256', kid: 'k1' }, (JSON.parse(signingKeysText({ kid: 'k1' })) as { keys: JsonWebKey[] }).keys[0] as JsonWebKey),
    'wrong issuer': await signWith({ ...payload, iss: 'https://evil.test' }),
    'wrong audience': await signWith({ ...payload, aud: 'another-api' }),
    'expired beyond the skew': await signWith({ ...payload, iat: Math.floor(Date.now() / 1000) - 1000, exp: Math.floor(Date.now() / 1000) - 60 }),
    'no exp': await signWith({ ...payload, exp: undefined }),
    'tampered payload': `${h}.${b64({ ...payload, sub: 'someone-else' })}.${(body.token as string).split('.')[2] as string}`,
    'another app': await signWith({ ...payload, appid: 'wxnotservedhere01' })
  }
  for (const [what, token] of Object.entries(forgeries)) {
    t.equal(await me(app, token), 401, `${what}: 401 at /me`)
    t.equal(await gateway(app, token), 401, `${what}: 401 at the gateway route`)
  }
  const skewed = await signWith({ ...payload, iat: Math.floor(Date.now() / 1000) - 905, exp: Math.floor(Date.now() / 1000) - 5 })
  t.equal(await me(app, skewed), 200, 'expired 5 s ago: within the 10 s clock skew')
  t.equal(await me(app, body.token), 200, 'the genuine token still works')
})

t.test('rotation: a second key signs, tokens of both verify, the JWKS lists both; removing the old key ends its tokens', async t => {
  const both = JSON.parse(signingKeysText({ kid: 'new' })) as { keys: object[] }
  const old = signingKeysText({ kid: 'old' })
  both.keys.push((JSON.parse(old) as { keys: object[] }).keys[0] as object)
  const before = await jwtApp(t, old)
  const oldToken = (await before.signIn('openid-rot')).token as string
  // The same store is not shared between two memory apps: verification is what is checked here.
  const after = await jwtApp(t, JSON.stringify(both))
  const newBody = await after.signIn('openid-rot')
  t.equal((jsonwebtoken.decode(newBody.token, { complete: true }) as jsonwebtoken.Jwt).header.kid, 'new', 'the first key signs')
  t.match((await after.app.inject('/.well-known/jwks.json')).json().keys.map((k: { kid: string }) => k.kid), ['new', 'old'])
  t.ok(await verifyElsewhere(after.app, newBody.token), 'the new token verifies with the JWKS')
  t.ok(await verifyElsewhere(after.app, oldToken), 'a token of the old key still verifies with the JWKS')
  const signed = after.app.signedSessions
  t.ok(await signed?.jwts.verify(oldToken), 'and at the login-api')
  const removed = await jwtApp(t, JSON.stringify({ keys: [both.keys[0]] }))
  t.equal(await removed.app.signedSessions?.jwts.verify(oldToken), null, 'once the old key is removed, its tokens are refused')
})

t.test('refresh: each token once; a spent one presented again revokes the family; the grace covers only the last one, briefly', async t => {
  const { app, signIn } = await jwtApp(t, undefined, { graceSeconds: 1 })
  const first = await signIn('openid-refresh')
  const r1 = await refresh(app, first.refresh_token)
  t.equal(r1.statusCode, 200)
  const p1 = r1.json()
  t.match(p1, { token: /\./, expires_in: 900, refresh_token: /^[A-Za-z0-9_-]{22}\./ })
  t.not(p1.refresh_token, first.refresh_token)
  t.equal(p1.refresh_token.split('.')[0], first.refresh_token.split('.')[0], 'the same family')
  t.equal((await verifyElsewhere(app, p1.token)).sub, first.user.user_id)

  const again = await refresh(app, first.refresh_token)
  t.equal(again.statusCode, 200, 'the token spent last, within the grace: answered again')
  t.equal(again.json().refresh_token, p1.refresh_token, 'with the same successor (the client may have lost the first answer)')

  const r2 = await refresh(app, p1.refresh_token)
  t.equal(r2.statusCode, 200, 'the successor works')
  const stolen = await refresh(app, first.refresh_token)
  t.equal(stolen.statusCode, 401, 'a token spent before the last one is reuse')
  t.equal(stolen.json().error, 'invalid_refresh_token')
  t.equal((await refresh(app, r2.json().refresh_token)).statusCode, 401, 'and the family is revoked: the current token ends too')
  t.equal(await gateway(app, r2.json().token), 401, 'as do its access tokens, where revocation is checked')
  t.equal(await metricValue(app, 'login_token_refreshes_total', { result: 'reuse' }), 1)
  t.equal(await metricValue(app, 'login_token_refreshes_total', { result: 'grace' }), 1)

  const other = await signIn('openid-refresh-2')
  const o1 = (await refresh(app, other.refresh_token)).json()
  await new Promise(resolve => setTimeout(resolve, 1200))
  t.equal((await refresh(app, other.refresh_token)).statusCode, 401, 'the last spent token after the grace is reuse')
  t.equal((await refresh(app, o1.refresh_token)).statusCode, 401, 'its family revoked')
  t.equal((await signIn('openid-refresh')).user.user_id, first.user.user_id, 'a new login opens a new family')
})

t.test('two refreshes of one token at once (one flaky client): both answered, with the same next refresh token', async t => {
  const { app, signIn } = await jwtApp(t)
  const first = await signIn('openid-race')
  const answers = await Promise.all([refresh(app, first.refresh_token), refresh(app, first.refresh_token)])
  t.same(answers.map(a => a.statusCode), [200, 200])
  t.equal(answers[0]?.json().refresh_token, answers[1]?.json().refresh_token)
  t.equal((await refresh(app, answers[1]?.json().refresh_token)).statusCode, 200, 'whichever answer the client kept works')
})

t.test('malformed refresh bodies are 400; unknown tokens 401', async t => {
  const { app } = await jwtApp(t)
  for (const payload of [{}, { refresh_token: 1 }, { refresh_token: '' }, { refresh_token: 'x'.repeat(300) }, { refresh_token: 'a', more: 1 }]) {
    const res = await app.inject({ method: 'POST', url: '/api/user/token/refresh', payload })
    t.equal(res.statusCode, 400, JSON.stringify(payload).slice(0, 40))
    t.equal(res.json().error, 'invalid_body')
  }
  t.equal((await refresh(app, 'not-a-refresh-token')).statusCode, 401)
  t.equal((await refresh(app, `${'A'.repeat(22)}.${'B'.repeat(43)}`)).statusCode, 401)
})

t.test('logout revokes the family: the access token still verifies until exp, the gateway refuses it; all=true ends every family', async t => {
  const { app, signIn } = await jwtApp(t)
  const a = await signIn('openid-out')
  const b = await signIn('openid-out')
  const auth = { authorization: `Bearer ${a.token as string}` }
  t.equal((await app.inject({ method: 'POST', url: '/api/user/logout', headers: auth })).statusCode, 204)
  t.ok(await verifyElsewhere(app, a.token), 'a service verifying on its own still accepts it until exp')
  t.equal(await gateway(app, a.token), 401, 'the gateway route checks revocation')
  t.equal(await me(app, a.token), 401)
  t.equal((await refresh(app, a.refresh_token)).statusCode, 401, 'its refresh token ends')
  t.equal(await me(app, b.token), 200, 'another login of the user is untouched')

  const c = await signIn('openid-out')
  t.equal((await app.inject({ method: 'POST', url: '/api/user/logout?all=true', headers: { authorization: `Bearer ${b.token as string}` } })).statusCode, 204)
  for (const s of [b, c]) {
    t.equal(await gateway(app, s.token), 401)
    t.equal((await refresh(app, s.refresh_token)).statusCode, 401)
  }
})

t.test('account deletion ends every family; opaque tokens issued before switching to jwt still work', async t => {
  const { app, signIn } = await jwtApp(t)
  const a = await signIn('openid-del')
  const del = await app.inject({ method: 'DELETE', url: '/api/user/me', headers: { authorization: `Bearer ${a.token as string}` }, payload: { confirm: true } })
  t.equal(del.statusCode, 204)
  t.equal((await refresh(app, a.refresh_token)).statusCode, 401)
  t.equal(await gateway(app, a.token), 401)

  const opaque = 'o'.repeat(43)
  await app.sessions.create(hashSessionToken(opaque), { user_id: 'u-opaque', appid: APPID, openid: 'openid-opaque' }, 600, 20)
  t.equal(await gateway(app, opaque), 200, 'an opaque session from before the switch is still accepted')
})

t.test('config: SESSION_FORMAT=jwt needs a JWKS with private ES256/EdDSA keys and unique kids', async t => {
  const base = { BROKER_URL: 'http://127.0.0.1:3001', BROKER_TOKEN: 'x'.repeat(40), WECHAT_APPID: APPID }
  t.equal(loadConfig(base).jwt, undefined, 'opaque by default')
  t.throws(() => loadConfig({ ...base, SESSION_FORMAT: 'paseto' }), /SESSION_FORMAT must be opaque or jwt/)
  t.throws(() => loadConfig({ ...base, SESSION_FORMAT: 'jwt' }), /SESSION_SIGNING_KEYS_FILE is required/)
  const pub = JSON.parse(signingKeysText({ kid: 'k' })) as { keys: Array<Record<string, unknown>> }
  delete pub.keys[0]?.d
  const cases: Array<[string, RegExp]> = [
    ['not json', /is not JSON/],
    ['{"keys": []}', /at least one key/],
    [JSON.stringify(pub), /no private part/],
    [JSON.stringify({ keys: [{ kty: 'oct', k: 'abc', kid: 'h' }] }), /not an ES256/],
    [JSON.stringify({ keys: [{ ...JSON.parse(signingKeysText({ kid: 'k' })).keys[0], kid: undefined }] }), /needs a kid/],
    [JSON.stringify({ keys: [JSON.parse(signingKeysText({ kid: 'same' })).keys[0], JSON.parse(signingKeysText({ kid: 'same' })).keys[0]] }), /the kid same twice/],
    [JSON.stringify({ keys: [{ ...JSON.parse(signingKeysText({ kid: 'k' })).keys[0], d: 'AAAA' }] }), /not a valid ES256 private key/]
  ]
  for (const [text, message] of cases) {
    t.throws(() => loadConfig({ ...base, SESSION_FORMAT: 'jwt', SESSION_SIGNING_KEYS: text }), message)
  }
  t.throws(() => loadConfig({ ...base, SESSION_FORMAT: 'jwt', SESSION_SIGNING_KEYS: signingKeysText({ kid: 'k' }), ACCESS_TOKEN_TTL_SECONDS: '7200', SESSION_TTL_SECONDS: '3600' }), /must not exceed SESSION_TTL_SECONDS/)
  const ok = loadConfig({ ...base, SESSION_FORMAT: 'jwt', SESSION_SIGNING_KEYS: signingKeysText({ kid: 'k' }), SESSION_JWT_ISSUER: 'https://id.example', SESSION_JWT_AUDIENCE: 'api' })
  t.match(ok.jwt, { issuer: 'https://id.example', audience: 'api', accessTtlSeconds: 900, graceSeconds: 5 })
  t.notOk(JSON.stringify(ok.jwt?.keys.map(k => k.publicJwk)).includes('"d"'))
})
