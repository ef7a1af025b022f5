--[[
  replay-3: move dead-lettered jobs back to the ready stream. The job keeps its
  id, idempotency key, trace context and unknown fields; the failure context
  is dropped and the attempt count starts again at 1. The dead entry is
  deleted in the same step, so replaying the same entry twice enqueues it once.

  KEYS[1]  PREFIX:{Q}:dead    stream
  KEYS[2]  PREFIX:{Q}:ready   stream
  KEYS[3]  PREFIX:{Q}:stats   hash of counters

  ARGV[1..] dead entry ids (at most 1000 per call)

  Returns: the number of jobs replayed (ids no longer in dead are skipped).
]]
local dropped = {
  attempt = true, reason = true, error_class = true, error = true,
  deliveries = true, failed_at = true, worker = true, queue = true,
  last_error_class = true, last_error = true,
}
local replayed = 0
for i = 1, #ARGV do
  local entries = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if #entries == 1 then
    local fields = entries[1][2]
    local kept = {}
    for j = 1, #fields, 2 do
      if not dropped[fields[j]] then
        kept[#kept + 1] = fields[j]
        kept[#kept + 1] = fields[j + 1]
      end
    end
    kept[#kept + 1] = 'attempt'
    kept[#kept + 1] = '1'
    redis.call('XADD', KEYS[2], '*', unpack(kept))
    redis.call('XDEL', KEYS[1], ARGV[i])
    replayed = replayed + 1
  end
end
if replayed > 0 then
  redis.call('HINCRBY', KEYS[3], 'replayed', replayed)
end
return replayed
