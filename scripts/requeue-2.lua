--[[
  requeue-2: give jobs that were fetched but never started back to the ready
  stream at once (graceful shutdown), instead of leaving them pending until the
  visibility timeout. The job keeps its id: when the entry has no "id" field,
  the old entry id is written into one, and "enqueued_at" likewise.

  Per entry, the new XADD is written first; the old entry is acknowledged and
  deleted only after it succeeded. An entry with more than 1024 fields is not
  requeued (Lua cannot pass that many arguments): it stays pending and comes
  back through reclaim-3, which dead-letters it when it keeps failing. When
  an XADD fails: if nothing was requeued yet in this call, its error reply is
  returned as it is (OOM, WRONGTYPE, an exhausted stream id: an error about
  the stream, not the entry); otherwise the call stops there and returns the
  count so far. Either way nothing was deleted for that entry or the ones
  after it: they stay pending and come back after the visibility timeout.

  KEYS[1]  PREFIX:{Q}:ready   stream
  KEYS[2]  PREFIX:{Q}:stats   hash of counters

  ARGV[1]  consumer group
  ARGV[2]  consumer name
  ARGV[3..] entry ids (at most 1000 per call)

  Returns: the number of jobs given back. Entries not pending on this consumer
           are skipped (someone else owns them now), entries wider than 1024
           fields are skipped (left pending); or the error reply of the first
           XADD when it failed before any job was given back.
]]
-- A job has at most 1000 fields (docs/wire-format.md); scripts accept
-- 1024, so the fields jobstream adds itself (id, enqueued_at, attempt,
-- last_error_class, last_error, prev_entry) always fit.
local MAX_FIELDS = 1024
local requeued = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  if #redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2]) > 0 then
    local entries = redis.call('XRANGE', KEYS[1], id, id)
    local done = true
    if #entries == 1 then
      local fields = entries[1][2]
      done = false
      if #fields <= 2 * MAX_FIELDS then
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
        local r = redis.pcall('XADD', KEYS[1], '*', unpack(fields))
        if type(r) == 'table' then
          if requeued == 0 then return r end
          break
        end
        requeued = requeued + 1
        done = true
      end
    end
    -- Requeued, or the entry no longer exists: the old id leaves the PEL.
    if done then
      redis.call('XACK', KEYS[1], ARGV[1], id)
      redis.call('XDEL', KEYS[1], id)
    end
  end
end
if requeued > 0 then
  redis.pcall('HINCRBY', KEYS[2], 'requeued', requeued)
end
return requeued
