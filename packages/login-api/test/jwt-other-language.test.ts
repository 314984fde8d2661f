// A service in another language verifies a login-api session with a stock JWT library and the
// JWKS URL: Python's PyJWT (Debian's python3-jwt; .ci/run installs it), PyJWKClient fetching
// /.well-known/jwks.json from a listening login-api, as a Python service would.
import t from 'tap'
import { execFile, spawnSync } from 'node:child_process'
import { promisify } from 'node:util'
import { broker, build, jwtConfig, login, signingKeysText, useNock } from './helper.js'

const PYTHON = '/usr/bin/python3'
const VERIFY = `
import sys, jwt
url, token = sys.argv[1], sys.argv[2]
key = jwt.PyJWKClient(url).get_signing_key_from_jwt(token)
try:
    claims = jwt.decode(token, key.key, algorithms=["ES256"], audience="wxlogin-test", issuer="https://login.test", leeway=10)
    print("ok", claims["sub"], claims["appid"], claims["openid"])
except jwt.InvalidTokenError as e:
    print("refused", type(e).__name__)
`

t.test('PyJWT verifies the access token with the JWKS URL, and refuses a tampered one', async t => {
  const probe = spawnSync(PYTHON, ['-c', 'import jwt, cryptography'], { encoding: 'utf8' })
  t.equal(probe.status, 0, `Debian's python3-jwt and python3-cryptography are installed (.ci/run installs them): ${probe.stderr}`)
  const nock = useNock(t)
  nock.enableNetConnect('127.0.0.1')
  const { app } = await build(t, jwtConfig(signingKeysText({ kid: 'py' })))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/.well-known/jwks.json`
  broker.session(nock, 'py-code', 'openid-py')
  const body = (await login(app, { code: 'py-code' })).json()
  // Asynchronously: the login-api in this process must answer PyJWKClient's request meanwhile.
  const verify = async (token: string): Promise<string> => {
    const r = await promisify(execFile)(PYTHON, ['-c', VERIFY, url, token], { encoding: 'utf8', timeout: 30_000 })
    return r.stdout.trim()
  }
  t.equal(await verify(body.token), `ok ${body.user.user_id as string} ${body.user.appid as string} openid-py`)
  const [h, p, s] = (body.token as string).split('.') as [string, string, string]
  const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), sub: 'someone-else' })).toString('base64url')
  t.equal(await verify(`${h}.${forged}.${s}`), 'refused InvalidSignatureError')
})
