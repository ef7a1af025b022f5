--[[
  replay-3: move dead-lettered jobs back to the ready stream. The job keeps its
  id, idempotency key, trace context and unknown fields; the failure context
  is dropped and the attempt count starts again at 1. The dead entry is
  deleted in the same step, so replaying the same entry twice enqueues it once.

  Per entry, the XADD to ready is written first and the dead entry deleted
  only after it succeeded. An entry that carries a `raw` field (its content
  is not a runnable job) or that keeps more than 1024 fields once the
  failure context and attempt are dropped is skipped: it stays in dead and is not counted. An
  XADD error (OOM, WRONGTYPE, an exhausted stream id) is returned as it is;
  the entries replayed before it in the same call stay replayed (and
  counted), the one that failed stays in dead.

  KEYS[1]  PREFIX:{Q}:dead    stream
  KEYS[2]  PREFIX:{Q}:ready   stream
  KEYS[3]  PREFIX:{Q}:stats   hash of counters

  ARGV[1..] dead entry ids (at most 1000 per call)

  Returns: the number of jobs replayed (ids no longer in dead, raw entries
           and entries wider than 1024 fields are skipped); or the error
           reply of the XADD that failed.
]]
-- A job has at most 1000 fields (docs/wire-format.md); scripts accept
-- 1024, so the fields jobstream adds itself (id, enqueued_at, attempt,
-- last_error_class, last_error, prev_entry) always fit.
local MAX_FIELDS = 1024
local dropped = {
  attempt = true, reason = true, error_class = true, error = true,
  deliveries = true, failed_at = true, worker = true, queue = true,
  last_error_class = true, last_error = true,
}
local replayed = 0
local function count()
  if replayed > 0 then
    redis.pcall('HINCRBY', KEYS[3], 'replayed', replayed)
  end
end
for i = 1, #ARGV do
  local entries = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if #entries == 1 then
    local fields = entries[1][2]
    local kept = {}
    local runnable = true
    for j = 1, #fields, 2 do
      if fields[j] == 'raw' then
        runnable = false
        break
      end
      if not dropped[fields[j]] then
        if #kept >= 2 * MAX_FIELDS then
          runnable = false
          break
        end
        kept[#kept + 1] = fields[j]
        kept[#kept + 1] = fields[j + 1]
      end
    end
    if runnable then
      kept[#kept + 1] = 'attempt'
      kept[#kept + 1] = '1'
      local r = redis.pcall('XADD', KEYS[2], '*', unpack(kept))
      if type(r) == 'table' then
        count()
        return r
      end
      redis.call('XDEL', KEYS[1], ARGV[i])
      replayed = replayed + 1
    end
  end
end
count()
return replayed
