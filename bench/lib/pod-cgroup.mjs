// Memory cgroups sized like the Kubernetes manifests' limits, to measure the services as a pod
// runs them: Node sizes its heap from the limit (process.constrainedMemory()), not from the
// machine's memory. Needs a writable cgroup hierarchy (root, cgroup v1 or v2); else a reason.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { root } from './harness.mjs'

const SERVICES = ['token-broker', 'login-api']

/** The memory limit of a service's container in deploy/k8s/base, in MiB. */
export function manifestLimitMib (service) {
  const text = readFileSync(`${root}deploy/k8s/base/${service}.yaml`, 'utf8')
  return Number(/limits:\s*\{[^}]*memory:\s*(\d+)Mi/.exec(text)?.[1])
}

/** A directory with a `token-broker` and a `login-api` cgroup at their manifests' limits. */
export function makePodCgroups () {
  const v1 = existsSync('/sys/fs/cgroup/memory/cgroup.procs')
  const dir = `${v1 ? '/sys/fs/cgroup/memory' : '/sys/fs/cgroup'}/wxlogin-bench-${process.pid}`
  const made = []
  try {
    mkdirSync(dir)
    made.push(dir)
    if (!v1) writeFileSync(`${dir}/cgroup.subtree_control`, '+memory')
    for (const service of SERVICES) {
      mkdirSync(`${dir}/${service}`)
      made.push(`${dir}/${service}`)
      const bytes = String(manifestLimitMib(service) * 2 ** 20)
      writeFileSync(`${dir}/${service}/${v1 ? 'memory.limit_in_bytes' : 'memory.max'}`, bytes)
    }
  } catch (err) {
    for (const d of made.reverse()) rmdirSync(d)
    return { reason: `no memory cgroup (${err.code ?? err.message})` }
  }
  return {
    dir,
    /** After the processes in them have exited. */
    remove () { for (const d of made.reverse()) { try { rmdirSync(d) } catch { /* still busy */ } } }
  }
}

/** A process's resident memory, split: its own pages and the shared ones (mostly Node's code). */
export function rssSplitMb (pid) {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8')
  const kb = name => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0)
  const mb = k => Math.round(k / 1024 * 10) / 10
  return { rss: mb(kb('Rss')), private: mb(kb('Private_Dirty') + kb('Private_Clean')), shared: mb(kb('Shared_Clean') + kb('Shared_Dirty')) }
}
