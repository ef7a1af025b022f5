--[[
  settle-7: the outcome of an attempt of a job that keeps a record or holds
  a uniqueness key: acknowledge (completed, discarded, expired, cancelled),
  schedule a retry, or dead-letter it; and, in the same atomic step, write
  the record's new state, release the uniqueness key when the job is
  final, and wake whoever waits for the job's result. Jobs with neither
  keep the cheaper batched ack-2, retry-3 and dead-3.

  Destination first, as in retry-3 and dead-3: the ZADD to scheduled or the
  XADD to dead is the first write; when it fails the error is returned and
  nothing is changed (the entry stays pending).

  KEYS[1]  PREFIX:{Q}:ready          stream
  KEYS[2]  PREFIX:{Q}:scheduled      zset (retrying)
  KEYS[3]  PREFIX:{Q}:dead           stream (dead)
  KEYS[4]  PREFIX:{Q}:stats          hash of counters: processed, discarded,
           expired, cancelled, retried or dead + 1; dead_trimmed
  KEYS[5]  PREFIX:{Q}:job:ID         hash, the job's record (unused when
           ARGV[7] is "0")
  KEYS[6]  PREFIX:{Q}:unique:KEY     string (unused when ARGV[8] is "0")
  KEYS[7]  PREFIX:{Q}:done:ID        list: one element (the final state)
           pushed when the job is final, for waiters (BLMOVE); expires with
           the record

  ARGV[1]  consumer group
  ARGV[2]  consumer name
  ARGV[3]  entry id in ready
  ARGV[4]  job id
  ARGV[5]  new state: "completed", "discarded", "expired", "cancelled",
           "retrying" or "dead"
  ARGV[6]  now, unix ms
  ARGV[7]  how long the record is kept after a final state, ms; "0" = the
           job has no record
  ARGV[8]  "1" to release the uniqueness key if it holds ARGV[4] (done by
           the caller only for a final state)
  ARGV[9]  completed: the result (MessagePack, bounded by the caller, ""
           for none); retrying, dead: the error message
  ARGV[10] retrying, dead: the error class ("" otherwise)
  ARGV[11] retrying: due time, unix ms; dead: approximate maximum length of
           the dead stream, "0" = unbounded; otherwise ignored
  ARGV[12] retrying: the scheduled member (MessagePack map of the job's
           fields for the next attempt); dead: ARGV[12..] are field, value
           ... of the dead entry (as dead-3)

  Returns: 1 when settled, 0 when the entry is not pending on this consumer
           (lease lost: nothing is changed); or an error reply with nothing
           changed: the ZADD's or XADD's error unchanged, or WRONGTYPE when
           the record, the key or the done list is not of its type (checked
           before any write, so a foreign key cannot stop the script after
           the job was moved).
]]
local COUNTER = { completed = 'processed', discarded = 'discarded', expired = 'expired',
  cancelled = 'cancelled', retrying = 'retried', dead = 'dead' }

-- XADD to the dead stream, as in dead-3.
local function add_dead(dead, stats, maxlen, ...)
  if maxlen == '0' then return redis.pcall('XADD', dead, '*', ...) end
  local before = redis.pcall('XLEN', dead)
  if type(before) ~= 'number' then return before end
  local r = redis.pcall('XADD', dead, 'MAXLEN', '~', maxlen, '*', ...)
  if type(r) ~= 'table' then
    local trimmed = before + 1 - redis.call('XLEN', dead)
    if trimmed > 0 then redis.pcall('HINCRBY', stats, 'dead_trimmed', trimmed) end
  end
  return r
end

local state, now, keep_ms = ARGV[5], ARGV[6], ARGV[7]
local counter = COUNTER[state]
if counter == nil then
  return redis.error_reply('ERR settle-7: unknown state ' .. tostring(state))
end
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2]) == 0 then
  return 0
end
for i, want in pairs({ [5] = 'hash', [6] = 'string', [7] = 'list' }) do
  local t = redis.call('TYPE', KEYS[i])
  t = type(t) == 'table' and t.ok or t
  if t ~= 'none' and t ~= want then
    return redis.error_reply('WRONGTYPE settle-7: ' .. KEYS[i] .. ' is a ' .. t .. ', not a ' .. want)
  end
end
if not string.match(keep_ms, '^%d+$') or #keep_ms > 15 then
  return redis.error_reply('ERR settle-7: the keep time must be a whole number of ms below 10^15')
end
if state == 'retrying' then
  local r = redis.pcall('ZADD', KEYS[2], ARGV[11], ARGV[12])
  if type(r) == 'table' and r.err then return r end
elseif state == 'dead' then
  local r = add_dead(KEYS[3], KEYS[4], ARGV[11], unpack(ARGV, 12))
  if type(r) == 'table' then return r end
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
redis.pcall('HINCRBY', KEYS[4], counter, 1)

-- After the move: the key first, then the record, each write a pcall
-- (the types were checked above; nothing here may stop the script).
local final = state ~= 'retrying'
if ARGV[8] == '1' and redis.pcall('GET', KEYS[6]) == ARGV[4] then
  redis.pcall('DEL', KEYS[6])
end
if keep_ms ~= '0' then
  if final then
    redis.pcall('HSET', KEYS[5], 'id', ARGV[4], 'state', state, 'finished_at', now, 'entry', '')
    if state == 'completed' and ARGV[9] ~= '' then
      redis.pcall('HSET', KEYS[5], 'result', ARGV[9])
    end
    if state == 'dead' then
      redis.pcall('HSET', KEYS[5], 'last_error', ARGV[9], 'last_error_class', ARGV[10])
    end
    redis.pcall('PEXPIRE', KEYS[5], keep_ms)
    redis.pcall('DEL', KEYS[7])
    redis.pcall('RPUSH', KEYS[7], state)
    redis.pcall('PEXPIRE', KEYS[7], keep_ms)
  else
    redis.pcall('HSET', KEYS[5], 'id', ARGV[4], 'state', 'retrying', 'run_at', ARGV[11],
      'last_error', ARGV[9], 'last_error_class', ARGV[10], 'entry', '')
  end
end
return 1
