--[[
  dead-3: move a job from the ready stream to the dead-letter stream, with its
  failure context. Used for permanent errors, exhausted retries, malformed
  entries and unknown job types.

  The add to dead is the first write; the entry is acknowledged and deleted
  from ready only after it succeeded. An error of the add (OOM, WRONGTYPE,
  an exhausted stream id, too many arguments) is returned as it is, with
  nothing changed: the entry stays pending.

  KEYS[1]  PREFIX:{Q}:ready   stream
  KEYS[2]  PREFIX:{Q}:dead    stream
  KEYS[3]  PREFIX:{Q}:stats   hash of counters: dead + 1, dead_trimmed +
           what MAXLEN removed

  ARGV[1]  consumer group
  ARGV[2]  consumer name
  ARGV[3]  entry id in ready
  ARGV[4]  approximate maximum length of the dead stream; "0" = unbounded
  ARGV[5..] field, value, field, value ... of the dead entry, written as
           given: the job's fields (as read, `attempt` among them only if
           the job carried it; `id` and `enqueued_at` explicit), then the
           failure context: reason, error_class, error, deliveries,
           failed_at, worker, queue (docs/wire-format.md, "Dead letters").
           At most 1024 job fields plus the context; a wider job (or one
           that carries a context name) is sent as one field raw
           (MessagePack map of its fields), id, enqueued_at, then the
           context

  Returns: 1 when moved, 0 when the entry is not pending on this consumer
           (lease lost: nothing is changed); or the error reply of the XADD,
           unchanged (nothing is changed).
]]

-- XADD to the dead stream, trimmed to about maxlen unless it is '0', adding
-- what the trim removed to stats field dead_trimmed. Returns the XADD reply,
-- or its error as a table with err (then nothing was written).
local function add_dead(dead, stats, maxlen, ...)
  if maxlen == '0' then return redis.pcall('XADD', dead, '*', ...) end
  local before = redis.pcall('XLEN', dead)
  if type(before) ~= 'number' then return before end
  local r = redis.pcall('XADD', dead, 'MAXLEN', '~', maxlen, '*', ...)
  if type(r) ~= 'table' then
    local trimmed = before + 1 - redis.call('XLEN', dead)
    if trimmed > 0 then redis.pcall('HINCRBY', stats, 'dead_trimmed', trimmed) end
  end
  return r
end

if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2]) == 0 then
  return 0
end
local r = add_dead(KEYS[2], KEYS[3], ARGV[4], unpack(ARGV, 5))
if type(r) == 'table' then
  return r
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
redis.pcall('HINCRBY', KEYS[3], 'dead', 1)
return 1
