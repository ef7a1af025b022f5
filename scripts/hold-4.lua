--[[
  hold-4: a handler got an upstream 429 (`JobError::rate_limited`): holds
  the job's key back fleet-wide until now + ARGV[6] (never shortening a
  longer hold), and defers the job itself to the hold's end, plus a spread,
  without spending an attempt. The spread is floor(ARGV[7] / 10^6 * s) ms,
  where s is a tenth of the time from now to the hold's end (the longer
  hold's, when one is kept), clamped to 10..1000 ms: so 0 to s - 1 ms, up
  to 9 ms even for a hold of 1 ms, at most 999 ms. One atomic step. The move is retry-3's (ZADD scheduled first, then
  XACK + XDEL) with the member's fields unchanged, counted as `held`. The
  hold is set even when the entry is no longer this consumer's (the
  upstream said no either way). Up to 16 other hold fields found expired
  (HRANDFIELD) are removed.

  KEYS[1]  PREFIX:{Q}:ready      stream
  KEYS[2]  PREFIX:{Q}:scheduled  zset, score = due time (unix ms)
  KEYS[3]  PREFIX:{Q}:stats      hash of counters (`held`)
  KEYS[4]  PREFIX:{Q}:holds      hash: hold field → until (unix ms, server
           clock); workers read it every 250 ms

  ARGV[1]  consumer group
  ARGV[2]  consumer name
  ARGV[3]  entry id of the job, or empty to set the hold only (nothing
           is moved: a job that keeps a record waits for the hold as a
           retry)
  ARGV[4]  scheduled member: MessagePack map of the job's fields as read,
           with `id` and `enqueued_at` explicit
  ARGV[5]  hold field (`key:<K>` or `type:<T>`), not empty
  ARGV[6]  hold for, ms (≥ 1)
  ARGV[7]  spread: a random integer in 0..999999 (millionths of s, above)

  Returns: {moved, until_ms, due_ms}: moved is 1 when the job was
           deferred, 0 when the entry is not pending on this consumer or
           ARGV[3] is empty (the hold is still set; the job is left alone); until_ms the
           hold's end (unix ms); due_ms the job's due time (0 when not
           moved). Or `ERR hold-4: …` for arguments out of range, or the
           ZADD's error (OOM …): nothing changed.
]]
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local hold_ms = tonumber(ARGV[6])
local r = tonumber(ARGV[7])
if ARGV[5] == '' or not hold_ms or hold_ms < 1 or not r or r < 0 or r > 999999 then
  return redis.error_reply('ERR hold-4: a hold field, hold ≥ 1 ms, spread in 0..999999')
end
local cur = tonumber(redis.call('HGET', KEYS[4], ARGV[5]) or '') or 0
local untl = math.max(cur, now_ms + hold_ms)
local owned = ARGV[3] ~= ''
  and #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2]) > 0
local due = 0
if owned then
  local spread = math.min(1000, math.max(10, math.floor((untl - now_ms) / 10)))
  due = untl + math.floor(r / 1000000 * spread)
  redis.call('ZADD', KEYS[2], due, ARGV[4])
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
  redis.call('XDEL', KEYS[1], ARGV[3])
  redis.pcall('HINCRBY', KEYS[3], 'held', 1)
end
if untl > cur then
  redis.call('HSET', KEYS[4], ARGV[5], string.format('%.0f', untl))
end
local some = redis.pcall('HRANDFIELD', KEYS[4], 16, 'WITHVALUES')
if type(some) == 'table' then
  for i = 1, #some, 2 do
    local u = tonumber(some[i + 1])
    if (not u or u <= now_ms) and some[i] ~= ARGV[5] then
      redis.pcall('HDEL', KEYS[4], some[i])
    end
  end
end
return {owned and 1 or 0, untl, due}
