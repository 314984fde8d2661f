#!/usr/bin/env node
// Writes random development secrets for docker-compose.yml to deploy/secrets/ (or SECRETS_DIR);
// keeps files that exist.
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../', import.meta.url))
const dir = (process.env.SECRETS_DIR ?? `${root}deploy/secrets`).replace(/\/?$/, '/')
const appid = process.env.WECHAT_APPID ?? 'wxdev0000000000001'
const random = (bytes) => randomBytes(bytes).toString('base64url')

// Compose bind-mounts each file as it is, and the containers run as non-root users of their
// own (node, redis) that must read it: the files stay 0644, and the directory is 0700 so no
// other user of this host can reach them.
mkdirSync(dir, { recursive: true })
chmodSync(dir, 0o700)

if (existsSync(`${dir}broker_token.txt`) !== existsSync(`${dir}broker_clients.json`)) {
  console.error(`${dir} has broker_token.txt or broker_clients.json but not both: remove the other first`)
  process.exit(1)
}

const write = (name, value) => {
  if (existsSync(`${dir}${name}`)) {
    console.log(`kept    ${dir}${name}`)
    return readFileSync(`${dir}${name}`, 'utf8').trim()
  }
  writeFileSync(`${dir}${name}`, `${value}\n`, { mode: 0o644 })
  console.log(`written ${dir}${name}`)
  return value
}

write('wechat_secret.txt', `dev-${randomBytes(16).toString('hex')}`)
const token = random(32)
write('broker_token.txt', token)
// The login-api receives WeChat's withdrawals and cancellations (docs/wechat-push.md).
const events = ['user_authorization_revoke', 'user_authorization_cancellation', 'user_info_modified']
write('broker_clients.json', JSON.stringify([{ name: 'login-api', token, apps: [appid], events }]))
// The MP console's message-push Token (3-32 letters and digits) and EncodingAESKey (43 characters).
write('push_token.txt', randomBytes(16).toString('hex'))
write('push_aes_key.txt', randomBytes(32).toString('base64').replace(/[^A-Za-z0-9]/g, '').padEnd(43, 'A').slice(0, 43))
write('grafana_admin_password.txt', random(12))
// The login-api's key for phone numbers at rest: <key id>:<base64 of 32 random bytes> a line;
// rotate by adding a new line on top (the first encrypts, every line decrypts).
write('pii_keys.txt', `k${new Date().toISOString().slice(0, 10).replace(/-/g, '')}:${randomBytes(32).toString('base64')}`)
// The login-api's session signing keys (SESSION_FORMAT=jwt): a JWKS with private keys, the first
// signs, every one verifies; rotate by adding a new key on top, waiting ACCESS_TOKEN_TTL_SECONDS
// after every verifier has the new JWKS, then removing the old one (docs/sessions-jwt.md).
const signingKey = () => {
  const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' })
  return { ...jwk, kid: `es256-${new Date().toISOString().slice(0, 10).replace(/-/g, '')}-${randomBytes(3).toString('hex')}`, alg: 'ES256', use: 'sig' }
}
write('session_signing_keys.json', JSON.stringify({ keys: [signingKey()] }))
// The users' PostgreSQL (docker-compose.yml's postgres service) and the login-api's URL for it.
const databasePassword = write('database_password.txt', random(32))
write('database_url.txt', `postgres://wxlogin:${databasePassword}@postgres:5432/wxlogin`)
const passwords = {
  // The default user's: never written down (see deploy/redis/users.acl.template).
  DEFAULT: random(32),
  TOKEN_BROKER: write('redis_broker_password.txt', random(32)),
  LOGIN_API: write('redis_login_password.txt', random(32)),
  REPLICA: write('redis_replica_password.txt', random(32)),
  SENTINEL: write('redis_sentinel_password.txt', random(32))
}
// Redis keeps only each password's SHA-256 (the # form of an ACL rule).
const template = readFileSync(`${root}deploy/redis/users.acl.template`, 'utf8')
const acl = template
  .split('\n').filter(line => line.startsWith('user ')).join('\n')
  .replace(/\{\{([A-Z_]+)_PASSWORD_SHA256\}\}/g, (_m, who) => createHash('sha256').update(passwords[who]).digest('hex'))
// Derived from the template and the passwords, so always written anew: a new user in the
// template reaches an existing deployment.
writeFileSync(`${dir}redis_users.acl`, `${acl}\n`, { mode: 0o644 })
console.log(`written ${dir}redis_users.acl`)
