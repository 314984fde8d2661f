import { spawnSync, type ChildProcess } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createConnection } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { freePort } from './ports.js'
import { signalTree } from './process-tree.js'
import { stopProcess } from './stop-process.js'
import { spawnServer } from './server-spawn.js'

export interface SqlServer {
  readonly dialect: 'postgres' | 'mysql'
  readonly port: number
  /** A DATABASE_URL for the login-api (a database and user of its own, with a password). */
  readonly url: string
  /** Stops the server (SIGTERM to its process group, waits for exit). Safe to call twice. */
  stop: () => Promise<void>
  /** Starts it again on the same port and data directory: what was committed is still there. */
  start: () => Promise<void>
  /** SIGSTOP freezes every process of the server (sockets open, nothing answers); SIGCONT resumes; SIGKILL kills. */
  signal: (sig: NodeJS.Signals) => void
}

interface Teardownable {
  teardown: (fn: () => unknown) => void
}

/** PostgreSQL's and MariaDB's daemons refuse to run as root: they run as their Debian users then. */
function serviceUser (name: string): { uid: number, gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined
  const r = spawnSync('id', ['-u', name], { encoding: 'utf8' })
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' })
  if (r.status !== 0 || g.status !== 0) {
    throw new Error(`running as root, and there is no ${name} user to run the server as`)
  }
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) }
}

/** Debian keeps initdb and postgres in a versioned directory off PATH: the newest one. */
export function postgresBin (): string {
  const root = '/usr/lib/postgresql'
  const versions = existsSync(root)
    ? readdirSync(root)
      .filter(v => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a))
    : []
  if (versions[0] === undefined) throw new Error('PostgreSQL is not installed (apt-get install postgresql)')
  return join(root, versions[0], 'bin')
}

function tempDir (prefix: string, owner: { uid: number, gid: number } | undefined): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  if (owner !== undefined) chownSync(dir, owner.uid, owner.gid)
  return dir
}

/**
 * One server process (group) that can be stopped, restarted on the same data, and signalled.
 * `detached` puts it in a process group of its own, so SIGSTOP reaches PostgreSQL's backends too.
 */
function supervised (
  name: string,
  port: number,
  spawnIt: () => ChildProcess,
  ready: () => Promise<boolean>,
  cleanup: () => void,
  t?: Teardownable
): Pick<SqlServer, 'start' | 'stop' | 'signal'> {
  let child: ChildProcess | undefined
  let log = ''
  const start = async (): Promise<void> => {
    if (child !== undefined) return
    const proc = spawnIt()
    log = ''
    proc.stderr?.on('data', (d: Buffer) => {
      log = (log + d.toString()).slice(-4000)
    })
    proc.stdout?.on('data', (d: Buffer) => {
      log = (log + d.toString()).slice(-4000)
    })
    child = proc
    proc.once('exit', () => {
      if (child === proc) child = undefined
    })
    const deadline = Date.now() + 30_000
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`${name} on port ${port} exited (${proc.exitCode ?? proc.signalCode}): ${log}`)
      }
      if (await ready()) return
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    signalTree(proc, 'SIGKILL')
    throw new Error(`${name} on port ${port} did not become ready: ${log}`)
  }
  const stop = async (): Promise<void> => {
    const proc = child
    if (proc === undefined) return
    child = undefined
    await stopProcess(proc, sig => {
      signalTree(proc, sig)
    })
  }

  const signal = (sig: NodeJS.Signals): void => {
    if (child === undefined) throw new Error(`${name} is not running`)
    signalTree(child, sig)
  }
  t?.teardown(async () => {
    await stop()
    cleanup()
  })
  return { start, stop, signal }
}

/**
 * A private PostgreSQL (initdb into a temporary directory, a free port on 127.0.0.1, fsync off),
 * with a database `wxlogin` owned by a password user `wx`. Never touches the machine's own server.
 */
export async function startPostgresServer (t?: Teardownable): Promise<SqlServer> {
  const bin = postgresBin()
  const owner = serviceUser('postgres')
  const dir = tempDir('wxlogin-pg-', owner)
  const data = join(dir, 'data')
  const port = await freePort()
  const as = owner === undefined ? {} : { uid: owner.uid, gid: owner.gid }
  const pw = join(dir, 'pw')
  writeFileSync(pw, 'wx-test-password\n')
  if (owner !== undefined) chownSync(pw, owner.uid, owner.gid)
  const init = spawnSync(
    join(bin, 'initdb'),
    [
      '-D',
      data,
      '-U',
      'postgres',
      '--auth-local=trust',
      '--auth-host=scram-sha-256',
      '-E',
      'UTF8',
      '--no-sync',
      '--pwfile',
      pw
    ],
    { ...as, encoding: 'utf8' }
  )
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`)
  const sup = supervised(
    'postgres',
    port,
    () =>
      spawnServer(
        join(bin, 'postgres'),
        [
          '-D',
          data,
          '-p',
          String(port),
          '-k',
          dir,
          '-c',
          'listen_addresses=127.0.0.1',
          '-c',
          'fsync=off',
          '-c',
          'full_page_writes=off'
        ],
        { ...as, detached: true, stdio: ['ignore', 'pipe', 'pipe'] }
      ),
    async () => {
      const r = spawnSync(join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port)], { encoding: 'utf8' })
      return r.status === 0
    },
    () => rmSync(dir, { recursive: true, force: true }),
    t
  )
  await sup.start()
  const psql = (sql: string): void => {
    const r = spawnSync(
      join(bin, 'psql'),
      ['-h', dir, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-c', sql],
      { ...as, encoding: 'utf8' }
    )
    if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`)
  }
  psql("CREATE ROLE wx LOGIN PASSWORD 'wx-test-password'")
  psql('CREATE DATABASE wxlogin OWNER wx')
  return { dialect: 'postgres', port, url: `postgres://wx:wx-test-password@127.0.0.1:${port}/wxlogin`, ...sup }
}

/**
 * A private MariaDB (mariadb-install-db into a temporary directory, a free port on 127.0.0.1),
 * with a database `wxlogin` and a password user `wx`. Never touches the machine's own server.
 */
export async function startMariadbServer (t?: Teardownable): Promise<SqlServer> {
  const owner = serviceUser('mysql')
  const dir = tempDir('wxlogin-mariadb-', owner)
  const data = join(dir, 'data')
  const port = await freePort()
  const initFile = join(dir, 'init.sql')
  writeFileSync(
    initFile,
    [
      'CREATE DATABASE IF NOT EXISTS wxlogin;',
      "CREATE USER IF NOT EXISTS 'wx'@'127.0.0.1' IDENTIFIED BY 'wx-test-password';",
      "GRANT ALL ON wxlogin.* TO 'wx'@'127.0.0.1';"
    ].join('\n')
  )
  const user = owner === undefined ? [] : ['--user=mysql']
  const install = spawnSync(
    'mariadb-install-db',
    ['--no-defaults', `--datadir=${data}`, '--auth-root-authentication-method=socket', '--skip-test-db', ...user],
    { encoding: 'utf8' }
  )
  if (install.status !== 0) throw new Error(`mariadb-install-db failed: ${install.stderr}${install.stdout}`)
  if (owner !== undefined) chownSync(initFile, owner.uid, owner.gid)
  const sup = supervised(
    'mariadbd',
    port,
    () =>
      spawnServer(
        'mariadbd',
        [
          '--no-defaults',
          `--datadir=${data}`,
          `--port=${port}`,
          '--bind-address=127.0.0.1',
          `--socket=${join(dir, 'mysqld.sock')}`,
          `--pid-file=${join(dir, 'mysqld.pid')}`,
          `--init-file=${initFile}`,
          '--skip-name-resolve',
          '--innodb-flush-log-at-trx-commit=2',
          '--skip-log-bin',
          ...user
        ],
        { detached: true, stdio: ['ignore', 'pipe', 'pipe'] }
      ),
    async () => await mysqlGreets(port),
    () => rmSync(dir, { recursive: true, force: true }),
    t
  )
  await sup.start()
  return { dialect: 'mysql', port, url: `mysql://wx:wx-test-password@127.0.0.1:${port}/wxlogin`, ...sup }
}

/** MariaDB answers a TCP connection with its handshake (protocol 10) once it accepts logins. */
async function mysqlGreets (port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const sock = createConnection({ port, host: '127.0.0.1' })
    sock.setTimeout(500)
    sock.once('data', d => {
      sock.destroy()
      resolve(d.length > 4 && d[4] === 10)
    })
    sock.once('error', () => {
      sock.destroy()
      resolve(false)
    })
    sock.once('timeout', () => {
      sock.destroy()
      resolve(false)
    })
  })
}
