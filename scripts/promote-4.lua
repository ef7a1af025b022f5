--[[
  promote-4: move due jobs from the scheduled set to the ready stream.
  Bounded: at most ARGV[2] jobs per call; the Rust promoter repeats the call
  while it reports a full batch. Safe to run from any number of workers at
  once: ZREM decides which call moves a member, and only that call adds it.

  KEYS[1]  PREFIX:{Q}:scheduled  zset, score = due time (unix ms), member =
           MessagePack map of the job's fields
  KEYS[2]  PREFIX:{Q}:ready      stream
  KEYS[3]  PREFIX:{Q}:dead       stream (for members that are not a map)
  KEYS[4]  PREFIX:{Q}:stats      hash of counters

  ARGV[1]  now, unix ms
  ARGV[2]  maximum number of jobs to move
  ARGV[3]  approximate maximum length of the dead stream; "0" = unbounded

  Returns: { moved, next_due } where next_due is the score of the earliest
           job still scheduled (unix ms) or -1 when the set is empty.
]]
-- A decoder for the one shape a member may have: a flat MessagePack map of
-- scalars. Redis's bundled cmsgpack predates the bin types (0xc4-0xc6) that
-- every current MessagePack library writes for byte strings, so it cannot be
-- used here. Returns a flat array { name, value, ... } of strings, or nil.
local function read_uint(s, pos, n)
  local v = 0
  for i = 0, n - 1 do
    v = v * 256 + string.byte(s, pos + i)
  end
  return v
end

local function read_scalar(s, pos)
  local b = string.byte(s, pos)
  if b == nil then return nil end
  local len, start
  if b >= 0xa0 and b <= 0xbf then len, start = b - 0xa0, pos + 1
  elseif b == 0xd9 or b == 0xc4 then len, start = read_uint(s, pos + 1, 1), pos + 2
  elseif b == 0xda or b == 0xc5 then len, start = read_uint(s, pos + 1, 2), pos + 3
  elseif b == 0xdb or b == 0xc6 then len, start = read_uint(s, pos + 1, 4), pos + 5
  elseif b <= 0x7f then return tostring(b), pos + 1
  elseif b >= 0xe0 then return tostring(b - 256), pos + 1
  elseif b == 0xcc or b == 0xcd or b == 0xce or b == 0xcf then
    local n = ({ [0xcc] = 1, [0xcd] = 2, [0xce] = 4, [0xcf] = 8 })[b]
    if pos + n > #s then return nil end
    return string.format('%.0f', read_uint(s, pos + 1, n)), pos + 1 + n
  elseif b == 0xd0 or b == 0xd1 or b == 0xd2 or b == 0xd3 then
    local n = ({ [0xd0] = 1, [0xd1] = 2, [0xd2] = 4, [0xd3] = 8 })[b]
    if pos + n > #s then return nil end
    local v = read_uint(s, pos + 1, n)
    if v >= 2 ^ (8 * n - 1) then v = v - 2 ^ (8 * n) end
    return string.format('%.0f', v), pos + 1 + n
  elseif b == 0xc3 then return '1', pos + 1
  elseif b == 0xc2 then return '0', pos + 1
  else return nil end
  if start + len - 1 > #s then return nil end
  return string.sub(s, start, start + len - 1), start + len
end

local function decode_member(s)
  local b = string.byte(s, 1)
  if b == nil then return nil end
  local count, pos
  if b >= 0x80 and b <= 0x8f then count, pos = b - 0x80, 2
  elseif b == 0xde and #s >= 3 then count, pos = read_uint(s, 2, 2), 4
  elseif b == 0xdf and #s >= 5 then count, pos = read_uint(s, 2, 4), 6
  else return nil end
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
  if pos ~= #s + 1 or #fields == 0 then return nil end
  return fields
end

local function dead(fields)
  if ARGV[3] == '0' then
    redis.call('XADD', KEYS[3], '*', unpack(fields))
  else
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
  end
  redis.call('HINCRBY', KEYS[4], 'dead', 1)
end

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local moved = 0
for _, member in ipairs(due) do
  if redis.call('ZREM', KEYS[1], member) == 1 then
    local fields = decode_member(member)
    if fields ~= nil then
      redis.call('XADD', KEYS[2], '*', unpack(fields))
      moved = moved + 1
    else
      -- 'raw' is a reserved field name (field::RAW in core/src/envelope.rs).
      dead({ 'raw', member, 'reason', 'malformed',
             'error_class', 'malformed',
             'error', 'scheduled member is not a MessagePack map of scalar fields',
             'failed_at', ARGV[1] })
    end
  end
end

local next_due = -1
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 2 then
  next_due = tonumber(first[2])
end
return { moved, next_due }
