--[[
  reclaim-3: take over jobs left pending by a worker that stopped refreshing
  their lease (crashed, killed, partitioned), and dead-letter the ones that
  were delivered too often (poison messages that kill their worker).
  Bounded: XAUTOCLAIM with COUNT; the Rust reclaimer repeats with the cursor.

  KEYS[1]  PREFIX:{Q}:ready   stream
  KEYS[2]  PREFIX:{Q}:dead    stream
  KEYS[3]  PREFIX:{Q}:stats   hash of counters

  ARGV[1]  consumer group
  ARGV[2]  consumer name (the new owner)
  ARGV[3]  minimum idle time, ms (the visibility timeout)
  ARGV[4]  cursor: entry id to start from ("0-0" for a new pass)
  ARGV[5]  maximum number of entries to claim
  ARGV[6]  maximum deliveries: a claimed entry delivered more often than
           this goes to dead with reason "abandoned"
  ARGV[7]  approximate maximum length of the dead stream; "0" = unbounded
  ARGV[8]  now, unix ms
  ARGV[9]  worker name, recorded in dead entries
  ARGV[10] queue name, recorded in dead entries

  Returns: { next_cursor, { { entry_id, deliveries, { field, value, ... } }, ... }, abandoned }
           "0-0" as next_cursor means the pass is complete; abandoned is the
           number of entries moved to dead in this call.
]]
local claim = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local cursor = claim[1]
-- Entries deleted from the stream while pending: drop them from the PEL.
local deleted = claim[3]
if deleted ~= nil and #deleted > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(deleted))
end

local max_deliveries = tonumber(ARGV[6])
local out = {}
local abandoned = 0
for _, entry in ipairs(claim[2]) do
  local id = entry[1]
  local fields = entry[2]
  local deliveries = 1
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if #pending == 1 then
    deliveries = pending[1][4]
  end
  if type(fields) ~= 'table' then
    -- Redis 6.2 reports a deleted entry as nil here; nothing to run.
    redis.call('XACK', KEYS[1], ARGV[1], id)
  elseif deliveries > max_deliveries then
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
    local context = { 'reason', 'abandoned', 'error_class', 'abandoned',
      'error', 'delivered ' .. deliveries .. ' times without an outcome (worker crashed or was killed)',
      'deliveries', tostring(deliveries), 'failed_at', ARGV[8], 'worker', ARGV[9], 'queue', ARGV[10] }
    for _, v in ipairs(context) do
      fields[#fields + 1] = v
    end
    if ARGV[7] == '0' then
      redis.call('XADD', KEYS[2], '*', unpack(fields))
    else
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*', unpack(fields))
    end
    redis.call('XACK', KEYS[1], ARGV[1], id)
    redis.call('XDEL', KEYS[1], id)
    redis.call('HINCRBY', KEYS[3], 'dead', 1)
    abandoned = abandoned + 1
  else
    out[#out + 1] = { id, deliveries, fields }
  end
end
return { cursor, out, abandoned }
