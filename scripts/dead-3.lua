--[[
  dead-3: move a job from the ready stream to the dead-letter stream, with its
  failure context. Used for permanent errors, exhausted retries, malformed
  entries and unknown job types.

  KEYS[1]  PREFIX:{Q}:ready   stream
  KEYS[2]  PREFIX:{Q}:dead    stream
  KEYS[3]  PREFIX:{Q}:stats   hash of counters

  ARGV[1]  consumer group
  ARGV[2]  consumer name
  ARGV[3]  entry id in ready
  ARGV[4]  approximate maximum length of the dead stream; "0" = unbounded
  ARGV[5..] field, value, field, value ... of the dead entry (the job's
           fields plus reason, error_class, error, attempt, deliveries, ...)

  Returns: 1 when moved, 0 when the entry is not pending on this consumer
           (lease lost: nothing is changed).
]]
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2]) == 0 then
  return 0
end
local entry = {}
for i = 5, #ARGV do
  entry[#entry + 1] = ARGV[i]
end
if ARGV[4] == '0' then
  redis.call('XADD', KEYS[2], '*', unpack(entry))
else
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', unpack(entry))
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
redis.call('HINCRBY', KEYS[3], 'dead', 1)
return 1
