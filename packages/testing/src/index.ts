export * from './redis-server.js'
export * from './ports.js'
export * from './logs.js'
export * from './wait.js'
