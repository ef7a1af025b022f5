--[[
  throttle-6: lets a job of a queue with limits per job type or per rate
  key (or whose key is held) start, or defers it. One atomic step, called
  by a worker after it read the job and before its handler runs, only for
  jobs a limit or a hold applies to:

  1. the job's key is held (a handler got an upstream 429 and returned
     `rate_limited`): the job is deferred to the hold's end, plus a spread
     of up to a tenth of the hold (at most 1 s);
  2. else every bucket that applies (its type's, its key's) is checked,
     a GCRA on the server's clock (as rate-1): all have a token now → one
     token is taken from each, and the job runs; else none is taken and
     the job is deferred to its place in line: each bucket that said no
     keeps a deferral horizon (`next`), the time the next deferred job
     is due, moved one interval on per deferral, so a backlog comes back
     paced at the limit instead of all at once.

  A deferral moves the job as retry-3 does (ZADD scheduled first, then
  XACK + XDEL), but with the member's fields unchanged: the attempt is not
  increased and it counts `throttled`, never `retried`. A hold field found
  expired is removed (HDEL) at the end.

  KEYS[1]  PREFIX:{Q}:ready            stream
  KEYS[2]  PREFIX:{Q}:scheduled        zset, score = due time (unix ms)
  KEYS[3]  PREFIX:{Q}:stats            hash of counters (`throttled`)
  KEYS[4]  PREFIX:{Q}:holds            hash: hold field → until (unix ms)
  KEYS[5]  PREFIX:{Q}:rate:type:<T>    hash {tat, next} (unix µs) of the
           job type's bucket; not touched when ARGV[6] is 0 (then pass
           any key of the queue, e.g. PREFIX:{Q}:rate)
  KEYS[6]  PREFIX:{Q}:rate:key:<K>     hash {tat, next} of the rate key's
           bucket; not touched when ARGV[8] is 0

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
    or not r or r < 0 or r > 999999 then
  return redis.error_reply('ERR throttle-6: intervals ≥ 0, bursts ≥ 1, spread in 0..999999')
end
r = r / 1000000
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

local function read(key, interval, burst)
  if interval == 0 then return nil end
  local v = redis.call('HMGET', key, 'tat', 'next')
  local tat = tonumber(v[1]) or 0
  if tat < now then tat = now end
  local nxt = tonumber(v[2]) or 0
  -- One token fits while the TAT is at most burst - 1 intervals ahead.
  local wait = tat + interval - burst * interval - now
  return {key = key, interval = interval, tat = tat, next = nxt, wait = wait}
end

local function defer(due_ms, code, counter)
  redis.call('ZADD', KEYS[2], due_ms, ARGV[4])
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
  redis.call('XDEL', KEYS[1], ARGV[3])
  redis.pcall('HINCRBY', KEYS[3], counter, 1)
  if expired_hold then redis.pcall('HDEL', KEYS[4], ARGV[5]) end
  return {code, due_ms}
end

local function save(b, tat, nxt)
  local last = math.max(tat, nxt)
  redis.call('HSET', b.key, 'tat', string.format('%.0f', tat), 'next', string.format('%.0f', nxt))
  redis.call('PEXPIRE', b.key, math.ceil((last - now) / 1000) + 1000)
end

if held_until then
  local spread = math.min(1000, math.max(10, math.floor((held_until - now_ms) / 10)))
  return defer(held_until + math.floor(r * spread), 2, 'throttled')
end

local buckets = {}
local b = read(KEYS[5], ti, tb)
if b then buckets[#buckets + 1] = b end
b = read(KEYS[6], ki, kb)
if b then buckets[#buckets + 1] = b end

local slot = nil
for _, x in ipairs(buckets) do
  if x.wait > 0 then
    -- Its place in line: after the token now due later, and after the
    -- jobs deferred before it.
    local at = math.max(now + x.wait, x.next)
    if not slot or at > slot then slot = at end
  end
end

if not slot then
  for _, x in ipairs(buckets) do
    save(x, x.tat + x.interval, x.next)
  end
  if expired_hold then redis.pcall('HDEL', KEYS[4], ARGV[5]) end
  return {0, 0}
end

-- Deferred: the destination first, then each bucket that said no moves
-- its horizon one interval past the slot.
local widest = 0
for _, x in ipairs(buckets) do
  if x.wait > 0 and x.interval > widest then widest = x.interval end
end
local due_ms = math.ceil((slot + r * widest) / 1000)
local out = defer(due_ms, 1, 'throttled')
for _, x in ipairs(buckets) do
  if x.wait > 0 then
    save(x, x.tat, math.max(x.next, slot) + x.interval)
  end
end
return out
