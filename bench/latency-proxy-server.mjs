// A TCP proxy that delays every chunk DELAY_MS in each direction, keeping order: what a Redis (or
// a broker) DELAY_MS away looks like. Added latency / (2 x DELAY_MS) is the number of sequential
// round trips a request makes through it. LISTEN_PORT -> 127.0.0.1:TARGET_PORT.
import net from 'node:net'

const delay = Number(process.env.DELAY_MS ?? 0)
const target = Number(process.env.TARGET_PORT)

/**
 * Writes each chunk `delay` ms after it arrived, never before the chunk ahead of it. A Redis
 * replica's link (it sends REPLCONF) goes through undelayed from then on: the proxy puts a
 * client at a distance, and the sentinels (or a Cluster's announced port) send replicas
 * through it too.
 */
function delayed (from, to, link) {
  let last = 0
  from.on('data', chunk => {
    if (!link.replication && chunk.includes('REPLCONF')) link.replication = true
    if (delay === 0 || link.replication) {
      if (last <= Date.now()) { to.write(chunk); return }
    }
    const at = Math.max(Date.now() + (link.replication ? 0 : delay), last)
    last = at
    setTimeout(() => { if (!to.destroyed) to.write(chunk) }, at - Date.now())
  })
  from.on('end', () => { setTimeout(() => to.end(), delay) })
  from.on('error', () => to.destroy())
}

net.createServer(client => {
  client.setNoDelay(true)
  const server = net.connect({ port: target, host: '127.0.0.1', noDelay: true })
  const link = { replication: false }
  delayed(client, server, link)
  delayed(server, client, link)
  server.on('close', () => client.destroy())
  client.on('close', () => server.destroy())
}).listen(Number(process.env.LISTEN_PORT), '127.0.0.1', () => { process.stdout.write('listening\n') })
