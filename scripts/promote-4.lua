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
local function to_field(v)
  local t = type(v)
  if t == 'string' then
    return v
  elseif t == 'number' then
    if v == math.floor(v) then
      return string.format('%.0f', v)
    end
    return tostring(v)
  elseif t == 'boolean' then
    return v and '1' or '0'
  end
  return nil
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
    local ok, job = pcall(cmsgpack.unpack, member)
    local fields = {}
    local valid = ok and type(job) == 'table'
    if valid then
      for k, v in pairs(job) do
        local name = to_field(k)
        local value = to_field(v)
        if name == nil or value == nil then
          valid = false
          break
        end
        fields[#fields + 1] = name
        fields[#fields + 1] = value
      end
    end
    if valid and #fields > 0 then
      redis.call('XADD', KEYS[2], '*', unpack(fields))
      moved = moved + 1
    else
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
