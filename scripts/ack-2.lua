--[[
  ack-2: acknowledge finished jobs and delete them from the ready stream.

  Only entries still pending on this consumer are acknowledged: a job that was
  reclaimed by another worker (lease lost) is left alone and reported back, so
  the new owner's outcome is the one that counts.

  The ownership check is one XPENDING over this consumer's pending entries
  between the smallest and the largest id of the batch (the consumer's own
  PEL: its size is bounded by the worker's concurrency), instead of one
  XPENDING per id; that is most of this script's cost per job.

  KEYS[1]  PREFIX:{Q}:ready   stream
  KEYS[2]  PREFIX:{Q}:stats   hash of counters

  ARGV[1]  consumer group
  ARGV[2]  consumer name
  ARGV[3]  counter field to increase by the number acknowledged
           ("processed", "discarded", or "expired" for jobs past their
           start deadline)
  ARGV[4]  smallest entry id of the batch
  ARGV[5]  largest entry id of the batch
  ARGV[6..] entry ids (at most 1000 per call)

  Returns: array of the entry ids that were NOT pending on this consumer (lost).
]]
local LIMIT = 10000
local owned = {}
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[4], ARGV[5], LIMIT, ARGV[2])
if #pending < LIMIT then
  for _, p in ipairs(pending) do
    owned[p[1]] = true
  end
else
  -- More of this consumer's entries in the range than one call returns:
  -- check each id on its own.
  for i = 6, #ARGV do
    if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2]) > 0 then
      owned[ARGV[i]] = true
    end
  end
end
local acked = {}
local lost = {}
for i = 6, #ARGV do
  if owned[ARGV[i]] then
    acked[#acked + 1] = ARGV[i]
  else
    lost[#lost + 1] = ARGV[i]
  end
end
if #acked > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(acked))
  redis.call('XDEL', KEYS[1], unpack(acked))
  redis.pcall('HINCRBY', KEYS[2], ARGV[3], #acked)
end
return lost
