--[[
  reclaim-3: take over jobs left pending by a worker that stopped refreshing
  their lease (crashed, killed, partitioned), and dead-letter the ones that
  were delivered too often (poison messages that kill their worker).
  Bounded: XAUTOCLAIM with COUNT; the Rust reclaimer repeats with the cursor.

  Never wedged by one entry, never loses one: an abandoned entry is added to
  dead FIRST, and acknowledged and deleted from ready only when that add
  succeeded. When it fails (an exhausted stream id, WRONGTYPE, ...) the entry
  stays pending, claimed by this consumer and not returned to run: it comes
  back after another visibility timeout. It is counted in `failed`, and the
  rest of the batch goes on. An entry with more than 1024 fields is
  dead-lettered as one field `raw`: a MessagePack map of all its fields in
  order (names as str, values as bin), as fields_to_msgpack in
  core/src/envelope.rs writes it.

  KEYS[1]  PREFIX:{Q}:ready   stream
  KEYS[2]  PREFIX:{Q}:dead    stream
  KEYS[3]  PREFIX:{Q}:stats   hash of counters: dead + abandoned,
           dead_trimmed + what MAXLEN removed

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

  Returns: { next_cursor, { { entry_id, deliveries, { field, value, ... } }, ... }, abandoned, failed, tracked }
           "0-0" as next_cursor means the pass is complete; the entries are
           the jobs now owned by the caller, to run (of any width);
           abandoned is the number of entries moved to dead in this call;
           failed is the number of entries that should have gone to dead but
           whose add to dead failed (left pending, not returned); tracked
           (added to v1; callers that read four elements are unaffected)
           lists the abandoned jobs that carry lifecycle fields, as
           { { field, value, ... }, ... } with only `id`, `unique_key`,
           `unique_for`, `record_ms`, `batch` and `group` (in the entry's
           order, then `id`: the job's, else the entry id): the caller
           finishes their bookkeeping (record, key, batch, group) with
           settle-14 and an empty
           entry id.
]]
-- A job has at most 1000 fields (docs/wire-format.md); scripts accept
-- 1024, so the fields jobstream adds itself (id, enqueued_at, attempt,
-- last_error_class, last_error, prev_entry) always fit.
local MAX_FIELDS = 1024

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

-- n as a big-endian unsigned integer of the given number of bytes.
local function be(n, bytes)
  local b = {}
  for i = bytes, 1, -1 do
    b[i] = n % 256
    n = math.floor(n / 256)
  end
  return string.char(unpack(b))
end

-- The fields { name, value, ... } as one MessagePack map, in order,
-- duplicates kept: names as str, values as bin, smallest headers first.
local function pack_fields(f)
  local n = #f / 2
  local out = {}
  if n < 16 then out[1] = string.char(0x80 + n)
  elseif n <= 0xffff then out[1] = string.char(0xde) .. be(n, 2)
  else out[1] = string.char(0xdf) .. be(n, 4) end
  for j = 1, #f, 2 do
    local k, v = f[j], f[j + 1]
    if #k < 32 then out[#out + 1] = string.char(0xa0 + #k)
    elseif #k < 256 then out[#out + 1] = string.char(0xd9) .. be(#k, 1)
    elseif #k <= 0xffff then out[#out + 1] = string.char(0xda) .. be(#k, 2)
    else out[#out + 1] = string.char(0xdb) .. be(#k, 4) end
    out[#out + 1] = k
    if #v < 256 then out[#out + 1] = string.char(0xc4) .. be(#v, 1)
    elseif #v <= 0xffff then out[#out + 1] = string.char(0xc5) .. be(#v, 2)
    else out[#out + 1] = string.char(0xc6) .. be(#v, 4) end
    out[#out + 1] = v
  end
  return table.concat(out)
end

local claim = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local cursor = claim[1]
-- Entries deleted from the stream while pending: drop them from the PEL (in
-- slices: XAUTOCLAIM may report up to 10 x COUNT of them).
local deleted = claim[3]
if deleted ~= nil then
  for i = 1, #deleted, 500 do
    redis.call('XACK', KEYS[1], ARGV[1], unpack(deleted, i, math.min(i + 499, #deleted)))
  end
end

local max_deliveries = tonumber(ARGV[6])
local out = {}
local abandoned, failed = 0, 0
local tracked = {}
local LIFECYCLE = { unique_key = true, unique_for = true, record_ms = true, batch = true, group = true }
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
    local job_id, enqueued_at
    for j = 1, #fields, 2 do
      if fields[j] == 'id' and job_id == nil then job_id = fields[j + 1] end
      if fields[j] == 'enqueued_at' and enqueued_at == nil then enqueued_at = fields[j + 1] end
    end
    local row
    if #fields <= 2 * MAX_FIELDS then
      row = fields
      if job_id == nil then
        row[#row + 1] = 'id'
        row[#row + 1] = id
      end
      if enqueued_at == nil then
        row[#row + 1] = 'enqueued_at'
        row[#row + 1] = string.match(id, '^(%d+)')
      end
    else
      -- Too wide to pass as arguments (Lua's C stack holds ~8000 values).
      row = { 'raw', pack_fields(fields), 'id', job_id or id,
        'enqueued_at', enqueued_at or string.match(id, '^(%d+)') }
    end
    local context = { 'reason', 'abandoned', 'error_class', 'abandoned',
      'error', 'delivered ' .. deliveries .. ' times without an outcome (worker crashed or was killed)',
      'deliveries', tostring(deliveries), 'failed_at', ARGV[8], 'worker', ARGV[9], 'queue', ARGV[10] }
    for _, v in ipairs(context) do
      row[#row + 1] = v
    end
    local r = add_dead(KEYS[2], KEYS[3], ARGV[7], unpack(row))
    if type(r) == 'table' then
      failed = failed + 1
    else
      redis.call('XACK', KEYS[1], ARGV[1], id)
      redis.call('XDEL', KEYS[1], id)
      abandoned = abandoned + 1
      local info = {}
      for j = 1, #fields, 2 do
        if LIFECYCLE[fields[j]] then
          info[#info + 1] = fields[j]
          info[#info + 1] = fields[j + 1]
        end
      end
      if #info > 0 then
        info[#info + 1] = 'id'
        info[#info + 1] = job_id or id
        tracked[#tracked + 1] = info
      end
    end
  else
    out[#out + 1] = { id, deliveries, fields }
  end
end
if abandoned > 0 then
  redis.pcall('HINCRBY', KEYS[3], 'dead', abandoned)
end
return { cursor, out, abandoned, failed, tracked }
