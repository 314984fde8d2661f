#!/usr/bin/env node
// Writes random development secrets to deploy/secrets/ for docker-compose.yml; keeps existing files.
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const dir = fileURLToPath(new URL('../deploy/secrets/', import.meta.url))
const appid = process.env.WECHAT_APPID ?? 'wxdev0000000000001'
const token = randomBytes(32).toString('base64url')
mkdirSync(dir, { recursive: true })
const files = {
  'wechat_secret.txt': `dev-${randomBytes(16).toString('hex')}`,
  'broker_token.txt': token,
  'broker_clients.json': JSON.stringify([{ name: 'login-api', token, apps: [appid] }]),
  'grafana_admin_password.txt': randomBytes(12).toString('base64url')
}
if (existsSync(`${dir}broker_token.txt`) !== existsSync(`${dir}broker_clients.json`)) {
  console.error('deploy/secrets has broker_token.txt or broker_clients.json but not both: remove the other first')
  process.exit(1)
}
for (const [name, value] of Object.entries(files)) {
  if (existsSync(`${dir}${name}`)) {
    console.log(`kept    deploy/secrets/${name}`)
    continue
  }
  // Compose bind-mounts these as they are: the containers' non-root user must be able to read them.
  writeFileSync(`${dir}${name}`, `${value}\n`, { mode: 0o644 })
  console.log(`written deploy/secrets/${name}`)
}
