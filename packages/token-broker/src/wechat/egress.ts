import type { Got } from 'got'
import { HttpProxyAgent, HttpsProxyAgent } from 'hpagent'
import { createUpstream, type Upstream } from '@wxlogin/service-kit'

/** The two ways the broker calls WeChat: JSON calls (`upstream`) and the gateway's streams (`got`). */
export interface Egress {
  got: Got
  upstream: Upstream
  close: () => void
}

/**
 * WECHAT_EGRESS_PROXY: every request to WeChat goes through this forward proxy (CONNECT for
 * https), so WeChat sees one address to whitelist. hpagent does the proxying; its agents keep
 * connections alive as Node's global agent does. The proxy's credentials live in the agents only:
 * no URL, error or log line the broker writes carries them.
 */
export function throughEgressProxy (got: Got, proxy: string | undefined): Egress {
  if (proxy === undefined) return { got, upstream: createUpstream(), close: () => {} }
  const options = { proxy, keepAlive: true, keepAliveMsecs: 1000, maxSockets: 256, maxFreeSockets: 256 }
  const agents = { http: new HttpProxyAgent(options), https: new HttpsProxyAgent(options) }
  return {
    got: got.extend({ agent: agents }),
    upstream: createUpstream(agents),
    // Kept-alive tunnels would hold the process open after a shutdown.
    close: () => {
      agents.http.destroy()
      agents.https.destroy()
    }
  }
}
