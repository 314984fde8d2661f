import t from 'tap'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { loadConfig as loadBrokerConfig } from '@wxlogin/token-broker'
import { loadConfig as loadLoginConfig } from '@wxlogin/login-api'
import { TEST_PII_KEYS } from '@wxlogin/testing'
import { root } from './helpers.js'

// The README is an index over docs/: a moved section must not leave a dead link behind, and a
// variable a config module reads must be documented where an operator looks for it.

function markdownFiles (): string[] {
  const files = readdirSync(root).filter(f => /^README.*\.md$/.test(f)).map(f => join(root, f))
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name)
      if (statSync(p).isDirectory()) walk(p)
      else if (name.endsWith('.md')) files.push(p)
    }
  }
  walk(join(root, 'docs'))
  for (const dir of ['deploy', 'examples', 'packages']) {
    if (!existsSync(join(root, dir))) continue
    for (const sub of readdirSync(join(root, dir))) {
      const readme = join(root, dir, sub, 'README.md')
      if (existsSync(readme)) files.push(readme)
    }
  }
  return files
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchors (markdown: string): Set<string> {
  const seen = new Map<string, number>()
  const out = new Set<string>()
  let fenced = false
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced
    const m = fenced ? null : /^#{1,6} (.*)$/.exec(line)
    if (m === null) continue
    const text = (m[1] ?? '').replace(/`/g, '').replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    const base = text.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    out.add(n === 0 ? base : `${base}-${n}`)
  }
  return out
}

function links (markdown: string): string[] {
  const text = markdown.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '')
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map(m => m[1] ?? '')
}

t.test('every relative link in README*.md and docs/ resolves, anchors too', async t => {
  const files = markdownFiles()
  t.ok(files.length > 5, `${files.length} markdown files`)
  for (const file of files) {
    const from = relative(root, file)
    for (const link of links(readFileSync(file, 'utf8'))) {
      if (/^[a-z]+:/i.test(link)) continue
      const [path = '', anchor] = link.split('#')
      const target = path === '' ? file : join(dirname(file), decodeURIComponent(path))
      if (!existsSync(target)) {
        t.fail(`${from}: ${link} -> no such file`)
        continue
      }
      if (anchor !== undefined && anchor !== '') {
        if (!target.endsWith('.md')) { t.fail(`${from}: ${link} -> an anchor into a file that is not markdown`); continue }
        t.ok(anchors(readFileSync(target, 'utf8')).has(decodeURIComponent(anchor)), `${from}: ${link}`)
      }
    }
  }
})

/** An environment that records every name a config module looks at. */
function recording (values: Record<string, string>, read: Set<string>): NodeJS.ProcessEnv {
  return new Proxy(values, {
    get (target, name) { if (typeof name === 'string') read.add(name); return target[name as string] },
    has (target, name) { if (typeof name === 'string') read.add(name); return name in target }
  })
}

const token = 'a-client-token-of-at-least-32-chars-0123456789'
const brokerEnvs: Array<Record<string, string>> = [
  { WECHAT_APPID: 'wx1234567890abcdef', WECHAT_SECRET: 's3cret', BROKER_CLIENTS: JSON.stringify([{ name: 'login-api', token, apps: ['*'] }]) },
  { WECHAT_APPS: '[{"appid":"wx1234567890abcdef","secret":"s"}]', BROKER_CLIENTS: JSON.stringify([{ name: 'x', token, apps: ['*'] }]), REDIS_SENTINELS: '127.0.0.1:26390' },
  { WECHAT_APPS: '[{"appid":"wx1234567890abcdef","secret":"s"}]', BROKER_CLIENTS: JSON.stringify([{ name: 'x', token, apps: ['*'] }]), REDIS_URL: 'redis://127.0.0.1:6390' }
]
const loginEnvs: Array<Record<string, string>> = [
  { WECHAT_APPID: 'wx1234567890abcdef', BROKER_URL: 'http://127.0.0.1:3001', BROKER_TOKEN: token },
  { LOGIN_APPS: '["wx1234567890abcdef"]', BROKER_URL: 'http://127.0.0.1:3001', BROKER_TOKEN: token, REDIS_SENTINELS: '127.0.0.1:26390', PII_ENCRYPTION_KEY: TEST_PII_KEYS },
  { LOGIN_APPS: '["wx1234567890abcdef"]', BROKER_URL: 'http://127.0.0.1:3001', BROKER_TOKEN: token, REDIS_URL: 'redis://127.0.0.1:6390', PII_ENCRYPTION_KEY: TEST_PII_KEYS }
]

t.test('every variable the two config modules read is in docs/configuration.md', async t => {
  const doc = readFileSync(join(root, 'docs/configuration.md'), 'utf8')
  const documented = new Set([...doc.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map(m => m[1]))
  const read = new Set<string>()
  for (const env of brokerEnvs) loadBrokerConfig(recording({ ...env }, read))
  for (const env of loginEnvs) loadLoginConfig(recording({ ...env }, read))
  t.ok(read.size > 30, `${read.size} variables read`)
  for (const name of [...read].sort()) {
    // NAME_FILE is the documented rule for every secret NAME (docs/configuration.md says so).
    const base = name.endsWith('_FILE') ? name.slice(0, -'_FILE'.length) : name
    t.ok(documented.has(name) || documented.has(base), `${name} is documented`)
  }
})
