--[[
  extend-1: refresh the lease of running jobs. Resets the idle time of each
  entry still pending on this consumer (XCLAIM ... JUSTID does not count a
  delivery), so the reclaimers of other workers leave it alone.

  KEYS[1]  PREFIX:{Q}:ready   stream

  ARGV[1]  consumer group
  ARGV[2]  consumer name
  ARGV[3..] entry ids (at most 1000 per call)

  Returns: array of the entry ids that are no longer pending on this consumer
           (lease lost: another worker reclaimed the job, or the group was
           recreated).
]]
local lost = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if #redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2]) > 0 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
  else
    lost[#lost + 1] = id
  end
end
return lost
