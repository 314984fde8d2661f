import t from 'tap'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { root } from './helpers.js'

// One job per module: a source file past 300 lines has two, and an import circle means two
// modules that are one. Both are cheap to keep out and costly to take out later.

function sources (dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) sources(p, out)
    else if (/\.ts$/.test(name) && !name.endsWith('.d.ts')) out.push(p)
  }
  return out
}

const packages = readdirSync(join(root, 'packages')).filter(p => existsSync(join(root, 'packages', p, 'src')))
const files = packages.flatMap(p => sources(join(root, 'packages', p, 'src')))

t.test('no source file in packages/*/src is over 300 lines', async t => {
  t.ok(files.length > 20, `${files.length} files`)
  for (const f of files) {
    const lines = readFileSync(f, 'utf8').split('\n').length - 1
    t.ok(lines <= 300, `${relative(root, f)}: ${lines} lines`)
  }
})

t.test('no import circle inside a package', async t => {
  const edges = new Map<string, string[]>()
  for (const f of files) {
    const text = readFileSync(f, 'utf8')
    const deps = [...text.matchAll(/^(?:import|export)\b[^'"]*?from '(\.{1,2}\/[^']+)'/gm)]
      .map(m => resolve(dirname(f), (m[1] ?? '').replace(/\.js$/, '.ts')))
      .filter(p => existsSync(p))
    edges.set(f, deps)
  }
  const state = new Map<string, 'open' | 'done'>()
  const circles: string[] = []
  const visit = (f: string, path: string[]): void => {
    if (state.get(f) === 'done') return
    if (state.get(f) === 'open') {
      circles.push([...path.slice(path.indexOf(f)), f].map(p => relative(root, p)).join(' -> '))
      return
    }
    state.set(f, 'open')
    for (const d of edges.get(f) ?? []) visit(d, [...path, f])
    state.set(f, 'done')
  }
  for (const f of files) visit(f, [])
  t.same(circles, [], 'no circle')
})

t.test('each service builds its Redis key names in its keys module alone', async t => {
  // A key spelled in two places drifts (a deletion once removed `ratelimit:phone:`, the
  // counter was `ratelimit:-phone:`): outside keys.ts nothing interpolates the key prefix.
  for (const service of ['login-api', 'token-broker']) {
    const dir = join(root, 'packages', service, 'src')
    t.ok(existsSync(join(dir, 'keys.ts')), `${service} has src/keys.ts`)
    for (const f of sources(dir).filter(f => !f.endsWith('/keys.ts'))) {
      const spelled = readFileSync(f, 'utf8').match(/\$\{[\w.]*[pP]refix\}/g) ?? []
      t.same(spelled, [], `${relative(root, f)} builds no key name`)
    }
  }
})
