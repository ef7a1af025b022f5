--[[
  cancel-4: cancel a job by id, through its record (only jobs that keep a
  record can be cancelled).

  - Not started (scheduled, ready, waiting for a retry, or delivered but
    not started): marked `cancelled`; the worker that fetches it drops it
    without running it and counts it (start-3, then settle-14, which also
    counts it in its batch and ends its chain). Its uniqueness key is
    released and waiters are woken now. The entry is not deleted here:
    only the worker's settle knows the job's batch and chain.
  - Running: marked `cancel_requested` and its id added to the queue's
    cancel feed, which every worker running recorded jobs of the queue
    reads about twice a second, to signal the handler.

  KEYS[1]  PREFIX:{Q}:job:ID         hash, the job's record
  KEYS[2]  PREFIX:{Q}:cancels        zset: ids of running jobs asked to
           cancel, score = when (unix ms); entries older than a minute are
           removed here
  KEYS[3]  PREFIX:{Q}:done:ID        list (see settle-14)
  KEYS[4]  PREFIX:{Q}:unique:KEY     string: the key the record names in
           unique_lock (any key of the queue when it has none: unused)

  ARGV[1]  job id
  ARGV[2]  now, unix ms

  Returns: 1 cancelled before it ran; 2 running: cancellation requested
           (the handler decides when to stop); 3 already final (completed,
           dead, cancelled, ...): nothing changed; 0 no record (unknown id,
           records off, or the record expired): nothing changed.
]]
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
if state == 'scheduled' or state == 'ready' or state == 'retrying' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[2])
  if redis.call('HGET', KEYS[1], 'unique_lock') == KEYS[4] and redis.call('GET', KEYS[4]) == ARGV[1] then
    redis.call('DEL', KEYS[4])
  end
  redis.call('DEL', KEYS[3])
  redis.call('RPUSH', KEYS[3], 'cancelled')
  -- The record lives until the worker drops the entry (settle-14 then
  -- sets its expiry): it is what tells the worker not to run it.
  return 1
end
if state == 'active' then
  redis.call('HSET', KEYS[1], 'cancel_requested', ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[2]) - 60000)
  return 2
end
return 3
