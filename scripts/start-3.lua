--[[
  start-3: a worker starts a job that keeps a record or holds a uniqueness
  key in mode "queued": the record becomes `active` and the key is
  released, atomically with the check that the job is still this worker's
  to run. A job whose record says `cancelled` is not started.

  KEYS[1]  PREFIX:{Q}:ready          stream
  KEYS[2]  PREFIX:{Q}:job:ID         hash, the job's record (unused when
           ARGV[8] is "0")
  KEYS[3]  PREFIX:{Q}:unique:KEY     string (unused when ARGV[9] is "0")

  ARGV[1]  consumer group
  ARGV[2]  consumer name
  ARGV[3]  entry id in ready
  ARGV[4]  job id
  ARGV[5]  now, unix ms
  ARGV[6]  attempt (1-based)
  ARGV[7]  worker name
  ARGV[8]  "1" to update the record, "0" not
  ARGV[9]  "1" to release the uniqueness key (only if it holds ARGV[4])

  Returns: 1 started; 0 the entry is not pending on this consumer (lease
           lost: nothing is changed); 2 the record says cancelled, or that
           cancellation was requested while an earlier attempt ran: the job
           must not run (nothing is changed; the caller settles it as
           cancelled).
]]
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2]) == 0 then
  return 0
end
if ARGV[8] == '1' then
  local seen = redis.call('HMGET', KEYS[2], 'state', 'cancel_requested')
  -- Cancelled before it ran, or while an earlier attempt ran (which then
  -- failed, or whose worker died): not run again.
  if seen[1] == 'cancelled' or seen[2] then
    return 2
  end
  redis.call('HSET', KEYS[2], 'id', ARGV[4], 'state', 'active', 'attempt', ARGV[6],
    'started_at', ARGV[5], 'worker', ARGV[7], 'entry', ARGV[3])
end
if ARGV[9] == '1' and redis.call('GET', KEYS[3]) == ARGV[4] then
  redis.call('DEL', KEYS[3])
end
return 1
