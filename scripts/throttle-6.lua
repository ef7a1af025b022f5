--[[
  throttle-6: lets a job of a queue with limits per job type or per rate
  key (or whose key is held) start, or defers it. One atomic step, called
  by a worker after it read the job and before its handler runs, only for
  jobs a limit or a hold applies to:

  1. the job's key is held (a handler got an upstream 429 and returned
     `rate_limited`): the job is deferred to the hold's end, plus a spread
     of floor(ARGV[10] / 10^6 * s) ms, where s is a tenth of the time from
     now to the hold's end clamped to 10..1000 ms (so 0 to s - 1 ms: up to
     9 ms even for a hold about to end, at most 999 ms);
  2. else every bucket that applies (its type's, its key's) is checked,
     a GCRA on the server's clock (as rate-1). A bucket passes when it
     holds a reservation for this job (field `r:<job id>`, made when the
     job was deferred before) or has a token now. All pass → the
     reservations are used up (HDEL), a token is taken from each of the
     others, and the job runs. Else the job is deferred, and reserves in
     each bucket without a reservation the next token (the TAT moves one
     interval on, as for a start): it is due at the latest of its
     reserved tokens, plus a spread of up to half an interval. So a
     backlog is deferred once per job, in line, and comes back paced at
     the limit; a job that comes back late loses no token. Reservations
     older than 60 s (a job purged while deferred) are removed as met
     (HRANDFIELD, 4 per deferral) and with the bucket when it expires.

  A deferral moves the job as retry-3 does (ZADD scheduled first, then
  XACK + XDEL), but with the member's fields unchanged: the attempt is not
  increased and it counts `throttled`, never `retried`. A hold field found
  expired is removed (HDEL) at the end. Time is the server's (TIME), as in
  rate-1: every worker shares the buckets whatever its clock says.

  KEYS[1]  PREFIX:{Q}:ready            stream
  KEYS[2]  PREFIX:{Q}:scheduled        zset, score = due time (unix ms)
  KEYS[3]  PREFIX:{Q}:stats            hash of counters (`throttled`)
  KEYS[4]  PREFIX:{Q}:holds            hash: hold field → until (unix ms)
  KEYS[5]  PREFIX:{Q}:rate:type:<T>    hash of the job type's bucket:
           `tat` (unix µs) and reservations `r:<job id>` → reserved token
           time (unix µs); expires 60 s after its TAT. Not touched when
           ARGV[6] is 0 (then pass any key of the queue, e.g.
           PREFIX:{Q}:rate)
  KEYS[6]  PREFIX:{Q}:rate:key:<K>     hash of the rate key's bucket, as
           KEYS[5]; not touched when ARGV[8] is 0

  ARGV[1]  consumer group
  ARGV[2]  consumer name
  ARGV[3]  entry id of the job
  ARGV[4]  scheduled member: MessagePack map of the job's fields as read,
           with `id` and `enqueued_at` explicit (used only on a deferral)
  ARGV[5]  hold field of the job (`key:<K>` or `type:<T>`), or empty for
           no hold check
  ARGV[6]  type bucket: interval between tokens, µs (0 = no type limit)
  ARGV[7]  type bucket: burst, tokens (≥ 1)
  ARGV[8]  key bucket: interval, µs (0 = no key limit)
  ARGV[9]  key bucket: burst, tokens (≥ 1)
  ARGV[10] spread: a random integer in 0..999999 (millionths of the spread)
  ARGV[11] job id (its `id` field, made explicit in the member)

  Returns: {0, 0} run it now (one token taken from each bucket);
           {1, due_ms} deferred by a limit to due_ms (unix ms);
           {2, due_ms} deferred by a hold to due_ms;
           {-1, 0} the entry is not pending on this consumer (lease lost):
           nothing changed, no token taken;
           or `ERR throttle-6: …` for arguments out of range, or the
           ZADD's error (OOM …): nothing changed.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now / 1000)
local ti, tb = tonumber(ARGV[6]), tonumber(ARGV[7])
local ki, kb = tonumber(ARGV[8]), tonumber(ARGV[9])
local r = tonumber(ARGV[10])
if not ti or ti < 0 or not tb or tb < 1 or not ki or ki < 0 or not kb or kb < 1
    or not r or r < 0 or r > 999999 or ARGV[11] == '' then
  return redis.error_reply('ERR throttle-6: intervals ≥ 0, bursts ≥ 1, spread in 0..999999, a job id')
end
r = r / 1000000
local mine = 'r:' .. ARGV[11]
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2]) == 0 then
  return {-1, 0}
end

-- Reads first: the hold, then the buckets.
local expired_hold = false
local held_until = nil
if ARGV[5] ~= '' then
  local u = tonumber(redis.call('HGET', KEYS[4], ARGV[5]) or '')
  if u then
    if u > now_ms then held_until = u else expired_hold = true end
  end
end

local function defer(due_ms, code)
  redis.call('ZADD', KEYS[2], due_ms, ARGV[4])
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
  redis.call('XDEL', KEYS[1], ARGV[3])
  redis.pcall('HINCRBY', KEYS[3], 'throttled', 1)
  if expired_hold then redis.pcall('HDEL', KEYS[4], ARGV[5]) end
  return {code, due_ms}
end

if held_until then
  local spread = math.min(1000, math.max(10, math.floor((held_until - now_ms) / 10)))
  return defer(held_until + math.floor(r * spread), 2)
end

local buckets = {}
local function read(key, interval, burst)
  if interval == 0 then return end
  local v = redis.call('HMGET', key, 'tat', mine)
  local tat = tonumber(v[1]) or 0
  if tat < now then tat = now end
  -- One token fits while the TAT is at most burst - 1 intervals ahead.
  local wait = tat + interval - burst * interval - now
  buckets[#buckets + 1] = {key = key, interval = interval, tat = tat,
    reserved = tonumber(v[2]), wait = wait}
end
read(KEYS[5], ti, tb)
read(KEYS[6], ki, kb)

local function expire(b, tat)
  redis.call('PEXPIRE', b.key, math.ceil((tat - now) / 1000) + 60000)
end

local all = true
for _, b in ipairs(buckets) do
  if not b.reserved and b.wait > 0 then all = false end
end
if all then
  for _, b in ipairs(buckets) do
    if b.reserved then
      redis.call('HDEL', b.key, mine)
    else
      redis.call('HSET', b.key, 'tat', string.format('%.0f', b.tat + b.interval))
      expire(b, b.tat + b.interval)
    end
  end
  if expired_hold then redis.pcall('HDEL', KEYS[4], ARGV[5]) end
  return {0, 0}
end

-- Deferred: to the latest of its tokens, reserved now where it has none.
local due, widest = now, 0
for _, b in ipairs(buckets) do
  if b.reserved then
    b.slot = b.reserved
  else
    b.slot = now + math.max(0, b.wait)
    if b.interval > widest then widest = b.interval end
  end
  if b.slot > due then due = b.slot end
end
local out = defer(math.ceil((due + r * widest / 2) / 1000), 1)
for _, b in ipairs(buckets) do
  if not b.reserved then
    local tat = b.tat + b.interval
    redis.call('HSET', b.key, 'tat', string.format('%.0f', tat), mine, string.format('%.0f', b.slot))
    expire(b, tat)
    local some = redis.pcall('HRANDFIELD', b.key, 4, 'WITHVALUES')
    if type(some) == 'table' then
      for i = 1, #some, 2 do
        local f, v = some[i], tonumber(some[i + 1])
        if f ~= 'tat' and f ~= mine and (not v or v < now - 60000000) then
          redis.pcall('HDEL', b.key, f)
        end
      end
    end
  end
end
return out
