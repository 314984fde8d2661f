export * from './connection.js'
export * from './commands.js'
export * from './handle.js'
export * from './open.js'
