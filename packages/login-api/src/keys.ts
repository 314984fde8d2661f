/**
 * Redis key names that more than one module must agree on, built in one place: a deletion that
 * spells a counter's name differently from the counter leaves the user's data behind.
 */

/**
 * The per-user phone exchange counter. The name is the one @fastify/rate-limit counted under
 * before (its child store's "-" and our "phone:" key), so an upgrade kept the window's count.
 */
export const phoneCounterKey = (prefix: string, appid: string, openid: string): string =>
  `${prefix}ratelimit:-phone:${appid}:${openid}`
