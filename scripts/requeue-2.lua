--[[
  requeue-2: give jobs that were fetched but never started back to the ready
  stream at once (graceful shutdown), instead of leaving them pending until the
  visibility timeout. The job keeps its id: when the entry has no "id" field,
  the old entry id is written into one, and "enqueued_at" likewise.

  KEYS[1]  PREFIX:{Q}:ready   stream
  KEYS[2]  PREFIX:{Q}:stats   hash of counters

  ARGV[1]  consumer group
  ARGV[2]  consumer name
  ARGV[3..] entry ids (at most 1000 per call)

  Returns: the number of jobs given back. Entries not pending on this consumer
           are skipped (someone else owns them now).
]]
local requeued = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  if #redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2]) > 0 then
    local entries = redis.call('XRANGE', KEYS[1], id, id)
    if #entries == 1 then
      local fields = entries[1][2]
      local has_id, has_enqueued = false, false
      for j = 1, #fields, 2 do
        if fields[j] == 'id' then has_id = true end
        if fields[j] == 'enqueued_at' then has_enqueued = true end
      end
      if not has_id then
        fields[#fields + 1] = 'id'
        fields[#fields + 1] = id
      end
      if not has_enqueued then
        fields[#fields + 1] = 'enqueued_at'
        fields[#fields + 1] = string.match(id, '^(%d+)')
      end
      redis.call('XADD', KEYS[1], '*', unpack(fields))
      requeued = requeued + 1
    end
    redis.call('XACK', KEYS[1], ARGV[1], id)
    redis.call('XDEL', KEYS[1], id)
  end
end
if requeued > 0 then
  redis.call('HINCRBY', KEYS[2], 'requeued', requeued)
end
return requeued
