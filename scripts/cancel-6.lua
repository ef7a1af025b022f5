--[[
  cancel-6: cancel a job by id, through its record (only jobs that keep a
  record can be cancelled).

  - Ready and not yet delivered: deleted from ready, counted `cancelled`,
    final at once.
  - Scheduled, waiting for a retry, or delivered but not started: marked
    `cancelled`; the worker that fetches it drops it without running it
    and counts it (start-3, settle-10). Waiters are woken now.
  - Running: marked `cancel_requested` and its id added to the queue's
    cancel feed, which every worker running recorded jobs of the queue
    reads about once a second, to signal the handler.
  A cancelled job releases its uniqueness key at once.

  KEYS[1]  PREFIX:{Q}:job:ID         hash, the job's record
  KEYS[2]  PREFIX:{Q}:cancels        zset: ids of running jobs asked to
           cancel, score = when (unix ms); entries older than a minute are
           removed here
  KEYS[3]  PREFIX:{Q}:done:ID        list (see settle-10)
  KEYS[4]  PREFIX:{Q}:unique:KEY     string: the key the record names in
           unique_lock (any key of the queue when it has none: unused)
  KEYS[5]  PREFIX:{Q}:ready          stream
  KEYS[6]  PREFIX:{Q}:stats          hash of counters: cancelled + 1 when the
           job is deleted here

  ARGV[1]  job id
  ARGV[2]  now, unix ms
  ARGV[3]  consumer group

  Returns: 1 cancelled before it ran; 2 running: cancellation requested
           (the handler decides when to stop); 3 already final (completed,
           dead, cancelled, ...): nothing changed; 0 no record (unknown id,
           records off, or the record expired): nothing changed.
]]
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
local function release()
  if redis.call('HGET', KEYS[1], 'unique_lock') == KEYS[4] and redis.call('GET', KEYS[4]) == ARGV[1] then
    redis.call('DEL', KEYS[4])
  end
end
local function wake()
  redis.call('DEL', KEYS[3])
  redis.call('RPUSH', KEYS[3], 'cancelled')
end
if state == 'scheduled' or state == 'ready' or state == 'retrying' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[2])
  release()
  wake()
  local entry = redis.call('HGET', KEYS[1], 'entry')
  if state == 'ready' and entry and entry ~= '' then
    local ok, pending = pcall(redis.call, 'XPENDING', KEYS[5], ARGV[3], entry, entry, 1)
    if ok and #pending == 0 and redis.call('XDEL', KEYS[5], entry) == 1 then
      -- Never delivered: gone now, so the record is final and expires.
      redis.pcall('HINCRBY', KEYS[6], 'cancelled', 1)
      local keep = redis.call('HGET', KEYS[1], 'keep_ms')
      if keep and string.match(keep, '^%d+$') and #keep <= 15 and keep ~= '0' then
        redis.call('HSET', KEYS[1], 'entry', '')
        redis.call('PEXPIRE', KEYS[1], keep)
        redis.call('PEXPIRE', KEYS[3], keep)
      end
    end
  end
  -- Otherwise the entry stays where it is until a worker fetches and drops
  -- it: the record must live until then, so it does not expire yet.
  return 1
end
if state == 'active' then
  redis.call('HSET', KEYS[1], 'cancel_requested', ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[2]) - 60000)
  return 2
end
return 3
