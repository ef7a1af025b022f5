--[[
  promote-4: move due jobs from the scheduled set to the ready stream.
  Bounded: at most ARGV[2] jobs per call; the Rust promoter repeats the call
  while it reports a full batch. Safe to run from any number of workers at
  once: the scan, the adds and the removes are one atomic call, so a member
  is moved by exactly one call.

  Never loses a member: every member is decoded before anything is written;
  then, member by member, the destination (ready, or dead for a member that
  is not a flat map of at most 1024 scalar fields) is written FIRST and the
  member is removed from scheduled only when that write succeeded. When a
  write fails, the call stops and returns that error (OOM, WRONGTYPE, an
  exhausted stream id, ...): the member stays scheduled; members moved before
  it in the same call stay moved.

  KEYS[1]  PREFIX:{Q}:scheduled  zset, score = due time (unix ms), member =
           MessagePack map of the job's fields
  KEYS[2]  PREFIX:{Q}:ready      stream
  KEYS[3]  PREFIX:{Q}:dead       stream (for members that cannot be moved to
           ready: not a map of scalars, or more than 1024 fields)
  KEYS[4]  PREFIX:{Q}:stats      hash of counters: dead and dead_scheduled + 1
           per member sent to dead, dead_trimmed + what MAXLEN removed

  ARGV[1]  now, unix ms
  ARGV[2]  maximum number of jobs to move
  ARGV[3]  approximate maximum length of the dead stream; "0" = unbounded

  Returns: { moved, next_due, malformed } where moved is the number of jobs
           added to ready, next_due is the score of the earliest job still
           scheduled (unix ms) or -1 when the set is empty, and malformed is
           the number of members sent to dead in this call.
           Or the error reply of the first XADD that failed, unchanged.
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

-- A decoder for the one shape a member may have: a flat MessagePack map of
-- scalars (str, bin, bool, integers that fit 2^53). Redis's bundled cmsgpack
-- predates the bin types (0xc4-0xc6) that every current MessagePack library
-- writes for byte strings, so it cannot be used here. Every read is
-- bounds-checked: a short or lying member yields nil, never an error.

-- n-byte big-endian unsigned integer at pos (n <= 4: exact), nil past the end.
local function read_uint(s, pos, n)
  if pos + n - 1 > #s then return nil end
  local v = 0
  for i = pos, pos + n - 1 do
    v = v * 256 + string.byte(s, i)
  end
  return v
end

-- 8-byte integer at pos as decimal text, or nil when its magnitude is above
-- 2^53 (a Lua number cannot hold it exactly: it would be rounded silently).
local function read_int64(s, pos, signed)
  local hi, lo = read_uint(s, pos, 4), read_uint(s, pos + 4, 4)
  if hi == nil or lo == nil then return nil end
  if signed and hi >= 2147483648 then
    local h = 4294967296 - hi -- the magnitude is h * 2^32 - lo
    if h > 2097152 then return nil end
    return string.format('%.0f', -(h * 4294967296 - lo))
  end
  if hi > 2097152 or (hi == 2097152 and lo > 0) then return nil end
  return string.format('%.0f', hi * 4294967296 + lo)
end

-- The scalar at pos as a string, and the position after it; nil if it is
-- not a scalar or runs past the end.
local function read_scalar(s, pos)
  local b = string.byte(s, pos)
  if b == nil then return nil end
  local len, start
  if b <= 0x7f then return tostring(b), pos + 1
  elseif b >= 0xe0 then return tostring(b - 256), pos + 1
  elseif b >= 0xa0 and b <= 0xbf then len, start = b - 0xa0, pos + 1
  elseif b == 0xd9 or b == 0xc4 then len, start = read_uint(s, pos + 1, 1), pos + 2
  elseif b == 0xda or b == 0xc5 then len, start = read_uint(s, pos + 1, 2), pos + 3
  elseif b == 0xdb or b == 0xc6 then len, start = read_uint(s, pos + 1, 4), pos + 5
  elseif b == 0xc3 then return '1', pos + 1
  elseif b == 0xc2 then return '0', pos + 1
  elseif b >= 0xcc and b <= 0xce then
    local n = ({ [0xcc] = 1, [0xcd] = 2, [0xce] = 4 })[b]
    local v = read_uint(s, pos + 1, n)
    if v == nil then return nil end
    return string.format('%.0f', v), pos + 1 + n
  elseif b >= 0xd0 and b <= 0xd2 then
    local n = ({ [0xd0] = 1, [0xd1] = 2, [0xd2] = 4 })[b]
    local v = read_uint(s, pos + 1, n)
    if v == nil then return nil end
    if v >= 2 ^ (8 * n - 1) then v = v - 2 ^ (8 * n) end
    return string.format('%.0f', v), pos + 1 + n
  elseif b == 0xcf or b == 0xd3 then
    local v = read_int64(s, pos + 1, b == 0xd3)
    if v == nil then return nil end
    return v, pos + 9
  else return nil end -- nil, float, array, map, ext, 0xc1
  if len == nil or start + len - 1 > #s then return nil end
  return string.sub(s, start, start + len - 1), start + len
end

-- A flat array { name, value, ... } of strings; or nil, plus true when the
-- member is a map wider than MAX_FIELDS (it is not decoded at all).
local function decode_member(s)
  local b = string.byte(s, 1)
  if b == nil then return nil end
  local count, pos
  if b >= 0x80 and b <= 0x8f then count, pos = b - 0x80, 2
  elseif b == 0xde then count, pos = read_uint(s, 2, 2), 4
  elseif b == 0xdf then count, pos = read_uint(s, 2, 4), 6
  else return nil end
  if count == nil or count == 0 then return nil end
  -- Each pair takes at least 2 bytes: a header claiming more is a lie, and
  -- looping over it (up to 2^32 times) would hold Redis for minutes.
  if count * 2 > #s - pos + 1 then return nil end
  if count > MAX_FIELDS then return nil, true end
  local fields = {}
  for _ = 1, count do
    local name, value
    name, pos = read_scalar(s, pos)
    if name == nil then return nil end
    value, pos = read_scalar(s, pos)
    if value == nil then return nil end
    fields[#fields + 1] = name
    fields[#fields + 1] = value
  end
  if pos ~= #s + 1 then return nil end
  return fields
end

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))

-- 1. Decode everything before the first write. pcall is a second line of
-- defence: a decoder bug must send a member to dead, not abort the call.
local decoded = {}
for i, member in ipairs(due) do
  local ok, fields, wide = pcall(decode_member, member)
  if not ok then
    decoded[i] = 'scheduled member is not a MessagePack map of scalar fields'
  elseif fields == nil then
    decoded[i] = wide and 'scheduled member has more than 1024 fields'
      or 'scheduled member is not a MessagePack map of scalar fields'
  else
    decoded[i] = fields
  end
end

-- 2. Move: destination first, ZREM only after it succeeded.
local moved, malformed = 0, 0
local function count_dead()
  if malformed > 0 then
    redis.pcall('HINCRBY', KEYS[4], 'dead', malformed)
    redis.pcall('HINCRBY', KEYS[4], 'dead_scheduled', malformed)
  end
end
for i, member in ipairs(due) do
  local fields = decoded[i]
  local r
  if type(fields) == 'table' then
    r = redis.pcall('XADD', KEYS[2], '*', unpack(fields))
  else
    -- 'raw' is a reserved field name (field::RAW in core/src/envelope.rs):
    -- the member bytes, verbatim.
    r = add_dead(KEYS[3], KEYS[4], ARGV[3], 'raw', member, 'reason', 'malformed',
      'error_class', 'malformed', 'error', fields, 'failed_at', ARGV[1])
  end
  if type(r) == 'table' then
    -- The add failed: the member stays scheduled; report the error as it is.
    count_dead()
    return r
  end
  redis.call('ZREM', KEYS[1], member)
  if type(fields) == 'table' then
    moved = moved + 1
  else
    malformed = malformed + 1
  end
end
count_dead()

local next_due = -1
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 2 then
  next_due = tonumber(first[2])
end
return { moved, next_due, malformed }
