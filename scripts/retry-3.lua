--[[
  retry-3: move a failed job from the ready stream to the scheduled set, to run
  again when due. One atomic step: the job is never in both places or in none.
  The ZADD is the first write and the entry is acknowledged and deleted only
  after it; an error of the ZADD (OOM, WRONGTYPE) changes nothing.

  KEYS[1]  PREFIX:{Q}:ready      stream
  KEYS[2]  PREFIX:{Q}:scheduled  zset, score = due time (unix ms)
  KEYS[3]  PREFIX:{Q}:stats      hash of counters

  ARGV[1]  consumer group
  ARGV[2]  consumer name
  ARGV[3]  entry id of the failed attempt
  ARGV[4]  due time, unix ms
  ARGV[5]  scheduled member: MessagePack map of the job's fields for the next
           attempt (attempt already increased, last error recorded)

  Returns: 1 when moved, 0 when the entry is not pending on this consumer
           (lease lost: nothing is changed); or the error reply of the ZADD
           (nothing is changed).
]]
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2]) == 0 then
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
redis.pcall('HINCRBY', KEYS[3], 'retried', 1)
return 1
