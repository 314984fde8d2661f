// The login's scripts (see RedisLoginScript): plain EVAL scripts, so that a Cluster allows a
// record read outside the identity's slot to fail softly (redis.pcall).

// KEYS: identity, [unionid]. ARGV: the user records' key prefix.
export const READ = `
local known = redis.call('GET', KEYS[1])
local union = false
if KEYS[2] then union = redis.call('GET', KEYS[2]) end
local target = known or union
local raw = false
if target then raw = redis.call('GET', ARGV[1] .. target) end
return { known or '', union or '', raw or '' }
`

// KEYS: identity, user record, events stream, unionid, the login code's kept answer.
// ARGV: expected user_id, expected record, user_id, record, link unionid (1/0), the kept answer
// rewritten ('' to leave it), stream cap, event count, then per event its field count and fields.
// Nothing is written unless the identity and the record are as read: another login got there
// first, and this one reads again.
export const COMMIT = `
local known = redis.call('GET', KEYS[1])
if (known or '') ~= ARGV[1] then return 0 end
local raw = redis.call('GET', KEYS[2])
if (raw or '') ~= ARGV[2] then return 0 end
if not known then redis.call('SET', KEYS[1], ARGV[3]) end
redis.call('SET', KEYS[2], ARGV[4])
if ARGV[5] == '1' then redis.call('SET', KEYS[4], ARGV[3], 'NX') end
if ARGV[6] ~= '' then redis.call('SET', KEYS[5], ARGV[6], 'XX', 'KEEPTTL') end
local i = 9
for e = 1, tonumber(ARGV[8]) do
  local n = tonumber(ARGV[i])
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 1
`

// Cluster. KEYS: the identity. ARGV: the user records' key prefix. The record is read where it
// is in the identity's slot (a user made by this release); elsewhere the GET fails inside the
// script and the caller reads it with a command of its own.
export const READ_LOCAL = `
local known = redis.call('GET', KEYS[1])
if not known then return { '', '', '0' } end
local raw = redis.pcall('GET', ARGV[1] .. known)
if type(raw) == 'table' then return { known, '', '0' } end
return { known, raw or '', '1' }
`

// Cluster. KEYS: [identity,] user record (one slot). ARGV: expected user_id, expected record,
// user_id, record. As COMMIT, without what lives in other slots.
export const COMMIT_LOCAL = `
local n = #KEYS
if n == 2 then
  local known = redis.call('GET', KEYS[1])
  if (known or '') ~= ARGV[1] then return 0 end
end
local raw = redis.call('GET', KEYS[n])
if (raw or '') ~= ARGV[2] then return 0 end
if n == 2 and ARGV[1] == '' then redis.call('SET', KEYS[1], ARGV[3]) end
redis.call('SET', KEYS[n], ARGV[4])
return 1
`
