--[[
  ack-2: acknowledge finished jobs and delete them from the ready stream.

  Only entries still pending on this consumer are acknowledged: a job that was
  reclaimed by another worker (lease lost) is left alone and reported back, so
  the new owner's outcome is the one that counts.

  KEYS[1]  PREFIX:{Q}:ready   stream
  KEYS[2]  PREFIX:{Q}:stats   hash of counters

  ARGV[1]  consumer group
  ARGV[2]  consumer name
  ARGV[3]  counter field to increase by the number acknowledged
           ("processed" or "discarded")
  ARGV[4..] entry ids (at most 1000 per call)

  Returns: array of the entry ids that were NOT pending on this consumer (lost).
]]
local acked = {}
local lost = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if #redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2]) > 0 then
    acked[#acked + 1] = id
  else
    lost[#lost + 1] = id
  end
end
if #acked > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(acked))
  redis.call('XDEL', KEYS[1], unpack(acked))
  redis.call('HINCRBY', KEYS[2], ARGV[3], #acked)
end
return lost
