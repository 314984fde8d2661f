// A TCP proxy that delays every chunk DELAY_MS in each direction, keeping order: what a Redis (or
// a broker) DELAY_MS away looks like. Added latency / (2 x DELAY_MS) is the number of sequential
// round trips a request makes through it. LISTEN_PORT -> 127.0.0.1:TARGET_PORT.
import net from 'node:net'

const delay = Number(process.env.DELAY_MS ?? 0)
const target = Number(process.env.TARGET_PORT)

/** Writes each chunk `delay` ms after it arrived, never before the chunk ahead of it. */
function delayed (from, to) {
  let last = 0
  from.on('data', chunk => {
    if (delay === 0) { to.write(chunk); return }
    const at = Math.max(Date.now() + delay, last)
    last = at
    setTimeout(() => { if (!to.destroyed) to.write(chunk) }, at - Date.now())
  })
  from.on('end', () => { setTimeout(() => to.end(), delay) })
  from.on('error', () => to.destroy())
}

net.createServer(client => {
  client.setNoDelay(true)
  const server = net.connect({ port: target, host: '127.0.0.1', noDelay: true })
  delayed(client, server)
  delayed(server, client)
  server.on('close', () => client.destroy())
  client.on('close', () => server.destroy())
}).listen(Number(process.env.LISTEN_PORT), '127.0.0.1', () => { process.stdout.write('listening\n') })
