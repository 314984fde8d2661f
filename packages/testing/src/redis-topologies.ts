import { spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createConnection } from 'node:net'
import { freePort } from './ports.js'
import { waitFor } from './wait.js'
import { spawnServer } from './server-spawn.js'

interface Teardownable {
  teardown: (fn: () => unknown) => void
}

export interface RedisProcess {
  readonly port: number
  readonly child: ChildProcess
  /** SIGKILL: the process dies without a word, as a crashed server or host would. */
  kill: () => Promise<void>
}

/** One command to a server, over a fresh socket: the test's own view, never a client under test. */
export async function redisCommand (port: number, args: string[]): Promise<string> {
  return await new Promise((resolve, reject) => {
    const sock = createConnection({ port, host: '127.0.0.1' })
    const chunks: Buffer[] = []
    sock.setTimeout(2000)
    sock.once('connect', () =>
      sock.write(`*${args.length}\r\n${args.map(a => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`)
    )
    sock.on('data', d => {
      chunks.push(d)
      const text = Buffer.concat(chunks).toString()
      if (text.endsWith('\r\n')) {
        sock.destroy()
        resolve(text)
      }
    })
    sock.once('error', err => {
      sock.destroy()
      reject(err)
    })
    sock.once('timeout', () => {
      sock.destroy()
      reject(new Error('timeout'))
    })
  })
}

async function spawnRedis (t: Teardownable, args: string[], dir: string): Promise<RedisProcess> {
  const port = Number(args[args.indexOf('--port') + 1])
  const child = spawnServer('redis-server', args, { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] })
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  const kill = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGKILL')
    await exited
  }
  t.teardown(kill)
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`redis-server on ${port} exited with ${child.exitCode}`)
      return (await redisCommand(port, ['PING']).catch(() => '')).startsWith('+PONG')
    },
    { timeoutMs: 10_000, intervalMs: 20, what: `redis-server on ${port}` }
  )
  return { port, child, kill }
}

const BASE = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning']

function workdir (t: Teardownable, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `${name}-`))
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true })
  })
  return dir
}

export interface SentinelTopology {
  masterName: string
  /** host:port of every sentinel, as REDIS_SENTINELS takes them. */
  sentinels: string
  servers: RedisProcess[]
  /** The port the sentinels name as master now. */
  masterPort: () => Promise<number>
}

export interface TopologyOptions {
  replicas?: number
  masterName?: string
  masters?: number
  /**
   * A port that stands in front of a server's port (a latency proxy, for the bench): the port
   * clients are told to use. Servers replicate and gossip directly.
   */
  front?: (port: number) => Promise<number>
}

/**
 * A master, `replicas` replicas and three sentinels on free ports (quorum 2; a master is down
 * after 1 s), everything stopped when the test ends.
 */
export async function startSentinelTopology (
  t: Teardownable,
  { replicas = 2, masterName = 'mymaster', front }: TopologyOptions = {}
): Promise<SentinelTopology> {
  const dir = workdir(t, 'sentinel')
  const masterPort = await freePort()
  const servers = [await spawnRedis(t, ['--port', String(masterPort), ...BASE], dir)]
  // The sentinels name (and watch) the master through what stands in front of it.
  const named = front === undefined ? masterPort : await front(masterPort)
  for (let i = 0; i < replicas; i++) {
    servers.push(
      await spawnRedis(
        t,
        ['--port', String(await freePort()), ...BASE, '--replicaof', '127.0.0.1', String(masterPort)],
        dir
      )
    )
  }
  const sentinelPorts: number[] = []
  for (let i = 0; i < 3; i++) {
    const port = await freePort()
    const conf = join(dir, `sentinel-${port}.conf`)
    writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${masterName} 127.0.0.1 ${named} 2`,
        `sentinel down-after-milliseconds ${masterName} 1000`,
        `sentinel failover-timeout ${masterName} 5000`,
        `sentinel parallel-syncs ${masterName} 1`,
        ''
      ].join('\n')
    )
    await spawnRedis(t, [conf, '--sentinel', '--port', String(port)], dir)
    sentinelPorts.push(port)
  }
  const masterNow = async (): Promise<number> => {
    const reply = await redisCommand(sentinelPorts[0] as number, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName])
    return Number(reply.split('\r\n')[4])
  }
  // Replicas in sync, and every sentinel aware of all of them, before anything is killed.
  await waitFor(
    async () => {
      for (const s of servers.slice(1)) {
        if (!(await redisCommand(s.port, ['INFO', 'replication'])).includes('master_link_status:up')) return false
      }
      for (const p of sentinelPorts) {
        const info = await redisCommand(p, ['SENTINEL', 'REPLICAS', masterName])
        if ((info.match(/\$4\r\nname\r\n/g) ?? []).length < replicas) return false
      }
      return true
    },
    { timeoutMs: 20_000, intervalMs: 100, what: 'replicas in sync and known to the sentinels' }
  )
  return { masterName, sentinels: sentinelPorts.map(p => `127.0.0.1:${p}`).join(','), servers, masterPort: masterNow }
}

export interface ClusterTopology {
  /** host:port of every node, as REDIS_CLUSTER_NODES takes them. */
  nodes: string
  servers: RedisProcess[]
  /** The server that is master for `key`'s slot now. */
  masterOf: (key: string) => Promise<RedisProcess>
}

/**
 * A Redis Cluster of `masters` masters with one replica each, on free ports (a node is down
 * after 1 s; a replica always stands for election), stopped when the test ends.
 */
export async function startCluster (
  t: Teardownable,
  { masters = 3, front }: TopologyOptions = {}
): Promise<ClusterTopology> {
  const dir = workdir(t, 'cluster')
  const servers: RedisProcess[] = []
  const named: number[] = []
  for (let i = 0; i < masters * 2; i++) {
    const port = await freePort()
    const announce = front === undefined ? port : await front(port)
    named.push(announce)
    // Announced to clients (CLUSTER SLOTS, MOVED) as the front's port; the bus stays direct.
    const announced =
      front === undefined
        ? []
        : ['--cluster-announce-port', String(announce), '--cluster-announce-bus-port', String(port + 10000)]
    servers.push(
      await spawnRedis(
        t,
        [
          '--port',
          String(port),
          ...BASE,
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          `nodes-${port}.conf`,
          '--cluster-node-timeout',
          '1000',
          '--cluster-replica-validity-factor',
          '0',
          ...announced
        ],
        dir
      )
    )
  }
  const create = spawnSync(
    'redis-cli',
    ['--cluster', 'create', ...servers.map(s => `127.0.0.1:${s.port}`), '--cluster-replicas', '1', '--cluster-yes'],
    { encoding: 'utf8', timeout: 60_000 }
  )
  if (create.status !== 0) throw new Error(`redis-cli --cluster create: ${create.stdout}${create.stderr}`)
  await waitFor(
    async () => {
      for (const s of servers) {
        if (!(await redisCommand(s.port, ['CLUSTER', 'INFO'])).includes('cluster_state:ok')) return false
        const info = await redisCommand(s.port, ['INFO', 'replication'])
        if (info.includes('role:slave') && !info.includes('master_link_status:up')) return false
      }
      return true
    },
    { timeoutMs: 30_000, intervalMs: 100, what: 'the cluster formed, replicas in sync' }
  )
  const masterOf = async (key: string): Promise<RedisProcess> => {
    const live = servers.find(s => s.child.exitCode === null && s.child.signalCode === null) as RedisProcess
    const slot = Number((await redisCommand(live.port, ['CLUSTER', 'KEYSLOT', key])).slice(1))
    const nodes = (await redisCommand(live.port, ['CLUSTER', 'NODES'])).split('\n')
    for (const line of nodes) {
      const f = line.split(' ')
      if (!(f[2] ?? '').includes('master') || (f[2] ?? '').includes('fail')) continue
      for (const range of f.slice(8)) {
        const [lo, hi] = range.split('-').map(Number) as [number, number | undefined]
        if (slot >= lo && slot <= (hi ?? lo)) {
          const port = Number((f[1] ?? '').split(':')[1]?.split('@')[0])
          return servers.find(s => s.port === port) as RedisProcess
        }
      }
    }
    throw new Error(`no master for slot ${slot}`)
  }
  return { nodes: named.map(p => `127.0.0.1:${p}`).join(','), servers, masterOf }
}
