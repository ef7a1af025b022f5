--[[
  progress-2: a running job reports its progress: written to its record,
  and its lease refreshed (as extend-1), if the job is still this worker's.

  KEYS[1]  PREFIX:{Q}:ready          stream
  KEYS[2]  PREFIX:{Q}:job:ID         hash, the job's record (written only
           if it exists)

  ARGV[1]  consumer group
  ARGV[2]  consumer name
  ARGV[3]  entry id in ready
  ARGV[4]  progress, percent 0 to 100
  ARGV[5]  a short message ("" for none)
  ARGV[6]  now, unix ms

  Returns: 1 when written (or there is no record: the lease was still
           refreshed); 0 when the entry is not pending on this consumer
           (lease lost: nothing is changed).
]]
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2]) == 0 then
  return 0
end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[2], 'progress', ARGV[4], 'progress_msg', ARGV[5], 'progress_at', ARGV[6])
end
return 1
