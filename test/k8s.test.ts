// deploy/k8s rendered by a real kustomize (kubectl kustomize), every document validated against
// the Kubernetes and prometheus-operator schemas (kubernetes-models), and the wiring checked:
// each service's configuration loads from what the manifests give it.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { loadConfig as loadBrokerConfig } from '@wxlogin/token-broker'
import { loadConfig as loadLoginConfig, worstCaseLoginMs } from '@wxlogin/login-api'
import { root, tool } from './helpers.js'

type Doc = Record<string, any>

/** A copy of deploy/k8s with development secrets in the example overlay, and an overlay adding the optional component. */
function workspace (): string {
  const dir = mkdtempSync(join(tmpdir(), 'k8s-'))
  cpSync(join(root, 'deploy/k8s'), dir, { recursive: true })
  const r = spawnSync(process.execPath, ['scripts/dev-secrets.mjs'], { cwd: root, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', SECRETS_DIR: join(dir, 'overlays/example/secrets') } })
  if (r.status !== 0) throw new Error(r.stderr)
  mkdirSync(join(dir, 'overlays/with-operator'))
  writeFileSync(join(dir, 'overlays/with-operator/kustomization.yaml'), [
    'apiVersion: kustomize.config.k8s.io/v1beta1',
    'kind: Kustomization',
    'namespace: wx-phone-login',
    'resources: [../example]',
    'components: [../../components/service-monitor, ../../components/wechat-push]', ''
  ].join('\n'))
  return dir
}

function render (dir: string): Doc[] {
  const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir}: ${r.stderr}`)
  const docs = parseAllDocuments(r.stdout).map(d => d.toJSON() as Doc)
  // kustomize folds long base64 values; the API server's decoder skips the line breaks, the
  // schema's "byte" format does not.
  for (const d of docs) {
    if (d.kind === 'Secret') for (const k of Object.keys(d.data ?? {})) d.data[k] = (d.data[k] as string).replace(/\s+/g, '')
  }
  return docs
}

const MODEL_PATHS: Record<string, string> = {
  'v1/Namespace': 'kubernetes-models/v1/Namespace',
  'v1/ConfigMap': 'kubernetes-models/v1/ConfigMap',
  'v1/Secret': 'kubernetes-models/v1/Secret',
  'v1/Service': 'kubernetes-models/v1/Service',
  'apps/v1/Deployment': 'kubernetes-models/apps/v1/Deployment',
  'batch/v1/Job': 'kubernetes-models/batch/v1/Job',
  'policy/v1/PodDisruptionBudget': 'kubernetes-models/policy/v1/PodDisruptionBudget',
  'autoscaling/v2/HorizontalPodAutoscaler': 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler',
  'networking.k8s.io/v1/NetworkPolicy': 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy',
  'monitoring.coreos.com/v1/ServiceMonitor': '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor'
}

async function validate (doc: Doc): Promise<void> {
  const path = MODEL_PATHS[`${doc.apiVersion as string}/${doc.kind as string}`]
  if (path === undefined) throw new Error(`no schema for ${doc.apiVersion as string} ${doc.kind as string}`)
  const mod = await import(path) as Record<string, new (d: Doc) => { validate: () => void }>
  const Model = mod[doc.kind as string] as new (d: Doc) => { validate: () => void }
  new Model(doc).validate()
}

const matches = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
  Object.entries(selector).every(([k, v]) => labels[k] === v)

t.test('kustomize renders deploy/k8s, and every document is valid', async t => {
  if (!tool(t, 'kubectl')) return
  const dir = workspace()
  const example = render(join(dir, 'overlays/example'))
  const operator = render(join(dir, 'overlays/with-operator'))
  const kinds = (docs: Doc[]): string[] => docs.map(d => d.kind as string).sort()
  t.same(kinds(example), ['ConfigMap', 'ConfigMap', 'Deployment', 'Deployment', 'HorizontalPodAutoscaler', 'Job', 'Namespace', 'NetworkPolicy', 'NetworkPolicy', 'PodDisruptionBudget', 'PodDisruptionBudget', 'Secret', 'Secret', 'Service', 'Service'])
  t.same(kinds(operator).filter(k => k === 'ServiceMonitor'), ['ServiceMonitor', 'ServiceMonitor'], 'the optional component adds two ServiceMonitors')
  for (const doc of operator) {
    await t.resolves(validate(doc), `${doc.kind as string} ${doc.metadata.name as string} is valid`)
  }
  // The validator is real: a broken document fails it.
  const broken = structuredClone(example.find(d => d.kind === 'Deployment') as Doc)
  broken.spec.replicas = 'two'
  await t.rejects(validate(broken), 'a Deployment with replicas "two" is refused')
  const noSelector = structuredClone(example.find(d => d.kind === 'Deployment') as Doc)
  delete noSelector.spec.selector
  await t.rejects(validate(noSelector), 'a Deployment without a selector is refused')
})

t.test('the wiring: config loads from the manifests, probes, selectors, exposure, security', async t => {
  if (!tool(t, 'kubectl')) return
  const dir = workspace()
  const docs = render(join(dir, 'overlays/with-operator'))
  const byKind = (kind: string): Doc[] => docs.filter(d => d.kind === kind)
  const named = (kind: string, name: string): Doc => {
    const found = docs.find(d => d.kind === kind && (d.metadata.name === name || (d.metadata.name as string).startsWith(`${name}-`)))
    if (found === undefined) throw new Error(`no ${kind} ${name}`)
    return found
  }
  t.ok(docs.every(d => d.kind === 'Namespace' || d.metadata.namespace === 'wx-phone-login'), 'everything in the overlay\'s namespace')
  t.same(byKind('Ingress'), [], 'no Ingress: exposing the login-api is the operator\'s choice')

  const files = mkdtempSync(join(tmpdir(), 'k8s-files-'))
  for (const deployment of byKind('Deployment')) {
    const name = deployment.metadata.name as string
    const pod = deployment.spec.template
    const labels = pod.metadata.labels as Record<string, string>
    const container = (pod.spec.containers as Doc[])[0] as Doc
    t.test(name, async t => {
      for (const key of ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/version', 'app.kubernetes.io/component', 'app.kubernetes.io/part-of', 'app.kubernetes.io/managed-by']) {
        t.ok(labels[key], `pods carry ${key}`)
      }
      t.ok(matches(deployment.spec.selector.matchLabels, labels), 'the selector matches the pod labels')

      // The environment the container gets: its ConfigMap, its env, and *_FILE paths into its Secret.
      const env: Record<string, string> = {}
      for (const from of container.envFrom as Doc[]) Object.assign(env, docs.find(d => d.kind === 'ConfigMap' && d.metadata.name === from.configMapRef.name)?.data)
      const mounts = new Map<string, Doc>()
      for (const m of container.volumeMounts as Doc[]) {
        const volume = (pod.spec.volumes as Doc[]).find(v => v.name === m.name) as Doc
        const secret = docs.find(d => d.kind === 'Secret' && d.metadata.name === volume.secret.secretName)
        t.ok(secret, `volume ${m.name as string} mounts a Secret the overlay defines (${volume.secret.secretName as string})`)
        mounts.set(m.mountPath, secret as Doc)
      }
      for (const e of container.env as Doc[]) {
        const ref = e.valueFrom?.secretKeyRef as Doc | undefined
        if (ref !== undefined) {
          const secret = docs.find(d => d.kind === 'Secret' && d.metadata.name === ref.name)
          t.ok(secret?.data?.[ref.key] ?? ref.optional, `${e.name as string} names a key of ${ref.name as string}, or is optional`)
          if (secret?.data?.[ref.key] !== undefined) env[e.name] = Buffer.from(secret.data[ref.key], 'base64').toString('utf8').trim()
          continue
        }
        if (!(e.name as string).endsWith('_FILE')) {
          env[e.name] = e.value
          continue
        }
        const slash = (e.value as string).lastIndexOf('/')
        const secret = mounts.get((e.value as string).slice(0, slash))
        const key = (e.value as string).slice(slash + 1)
        t.ok(secret?.data?.[key], `${e.name as string} names a key of the mounted Secret`)
        const local = join(files, `${name}-${key}`)
        writeFileSync(local, Buffer.from(secret?.data?.[key] ?? '', 'base64'))
        env[e.name] = local
      }
      const load = name === 'token-broker' ? loadBrokerConfig : loadLoginConfig
      t.doesNotThrow(() => load(env), 'the service\'s configuration loads from exactly this environment')
      if (name === 'login-api') {
        const config = loadLoginConfig(env)
        t.ok(pod.spec.terminationGracePeriodSeconds * 1000 >= worstCaseLoginMs(config) + 5000, 'the grace period outlasts the slowest login')
      }

      const ports = new Map((container.ports as Doc[]).map(p => [p.name as string, p.containerPort as number]))
      t.equal(ports.get('http'), Number(env.PORT), 'the http port is the one the service listens on')
      t.equal(ports.get('metrics'), Number(env.METRICS_PORT), 'the metrics port is the one the service listens on')
      for (const probe of ['readinessProbe', 'livenessProbe']) t.ok(ports.has(container[probe].httpGet.port), `${probe} targets a container port`)
      t.equal(container.readinessProbe.httpGet.path, '/readyz')
      t.equal(container.livenessProbe.httpGet.path, '/healthz')
      t.ok(container.resources.requests.cpu && container.resources.limits.memory, 'requests and limits')

      t.equal(pod.spec.securityContext.runAsNonRoot, true)
      t.same(container.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } })

      const service = named('Service', name)
      t.ok(matches(service.spec.selector, labels), 'its Service selects its pods')
      for (const p of service.spec.ports as Doc[]) t.ok(ports.has(p.targetPort), `Service port ${p.name as string} targets a container port`)
      t.ok(matches(named('PodDisruptionBudget', name).spec.selector.matchLabels, labels), 'its PodDisruptionBudget selects its pods')
      t.ok(matches(named('NetworkPolicy', name).spec.podSelector.matchLabels, labels), 'its NetworkPolicy selects its pods')
      const monitor = named('ServiceMonitor', name)
      t.ok(matches(monitor.spec.selector.matchLabels, service.metadata.labels), 'its ServiceMonitor selects its Service')
      t.ok((service.spec.ports as Doc[]).some(p => p.name === monitor.spec.endpoints[0].port), 'on a port the Service has')
    })
  }

  const broker = named('Service', 'token-broker')
  t.equal(broker.spec.type, 'ClusterIP', 'the broker Service is internal')
  t.notOk(broker.spec.externalIPs ?? broker.spec.loadBalancerIP, 'no external address')
  t.notOk((broker.spec.ports as Doc[]).some(p => p.nodePort !== undefined), 'no node port')
  const policy = named('NetworkPolicy', 'token-broker')
  const [api, metrics] = policy.spec.ingress as [Doc, Doc]
  t.same(api.ports, [{ port: 'http' }])
  const clientLabel = api.from[0].podSelector.matchLabels as Record<string, string>
  t.ok(matches(clientLabel, named('Deployment', 'login-api').spec.template.metadata.labels), 'the login-api is a labelled broker client')
  t.notOk(matches(clientLabel, named('Deployment', 'token-broker').spec.template.metadata.labels), 'nothing else is by default')
  for (const p of [metrics, (named('NetworkPolicy', 'login-api').spec.ingress as [Doc, Doc])[1]]) {
    t.same(p.from[0].podSelector.matchLabels, { 'app.kubernetes.io/name': 'prometheus' }, 'only Prometheus reaches a metrics port')
    t.same(p.ports, [{ port: 'metrics' }])
  }
  const hpa = named('HorizontalPodAutoscaler', 'login-api')
  t.equal(hpa.spec.scaleTargetRef.name, 'login-api')
  t.equal(named('Deployment', 'token-broker').spec.replicas, 2, 'two broker replicas')
})

t.test('the migrate Job: the login-api image, DATABASE_URL from its Secret, locked down', async t => {
  if (!tool(t, 'kubectl')) return
  const docs = render(join(workspace(), 'overlays/example'))
  const job = docs.find(d => d.kind === 'Job' && d.metadata.name === 'login-api-migrate') as Doc
  const api = docs.find(d => d.kind === 'Deployment' && d.metadata.name === 'login-api') as Doc
  const container = job.spec.template.spec.containers[0] as Doc
  t.equal(container.image, api.spec.template.spec.containers[0].image, 'the same image as the login-api')
  t.same(container.command, ['node', 'dist/cli/migrate.js'])
  const ref = (container.env as Doc[]).find(e => e.name === 'DATABASE_URL')?.valueFrom.secretKeyRef as Doc
  const secret = docs.find(d => d.kind === 'Secret' && d.metadata.name === ref.name) as Doc
  t.match(Buffer.from(secret.data[ref.key], 'base64').toString('utf8'), /^postgres:\/\//, 'a DATABASE_URL in the Secret')
  t.equal(container.securityContext.readOnlyRootFilesystem, true)
  t.equal(job.spec.template.spec.securityContext.runAsNonRoot, true)
})
