--[[
  group-start-6: a worker is about to run a job that carries a `group` but
  may not have been admitted through group-enqueue-6 (a delayed job
  promoted from scheduled, a replayed dead letter, a job enqueued with a
  uniqueness key or a record, an XADD by hand). Admitted jobs (the job id
  is in PREFIX:{Q}:grouped under this group: enqueued through the gate, or
  a retry of an admitted job) run. Others are admitted if the group has
  room and no job waiting; otherwise the entry is moved to the end of the
  group's waiting stream (with `id` and `enqueued_at` made explicit, so the
  job keeps both) and acknowledged, to come back when its turn comes.

  Destination first: the XADD to the group's stream comes before the XACK
  and XDEL; nothing is changed when it fails.

  KEYS[1]  PREFIX:{Q}:ready     stream
  KEYS[2]  PREFIX:{Q}:groups    hash: group → number of its jobs admitted
  KEYS[3]  PREFIX:{Q}:grouped   hash: "<#group>:<group>:<job id>" → group
  KEYS[4]  PREFIX:{Q}:group:G   stream: the group's waiting jobs
  KEYS[5]  PREFIX:{Q}:meta      hash: group_concurrency (default 1)
  KEYS[6]  PREFIX:{Q}:stats     hash of counters: group_waiting (gauge)
           + 1 and group_parked + 1 for an entry moved out of ready

  ARGV[1]  consumer group
  ARGV[2]  consumer name
  ARGV[3]  entry id in ready
  ARGV[4]  the job's group
  ARGV[5]  the job id

  Returns: 1 run it (admitted); 2 it waits behind its group (moved out of
           ready: nothing more to do); 0 the entry is not pending on this
           consumer (lease lost: nothing is changed), or it is pending on
           this consumer but was deleted from ready and would have to wait
           (nothing to move: nothing is changed, the id stays in the
           pending list until reclaim-3 drops it; an admitted job, or one
           admitted now, returns 1 without the entry being read); or the
           XADD's error reply (nothing is changed).
]]
-- The field of PREFIX:{Q}:grouped for job `id` of group `g`: the group's
-- length in bytes, the group, the id ("8:tenant-7:<id>"). Keyed by group
-- and id, so a job id reused in another group never takes or frees that
-- group's place.
local function slot(g, id) return #g .. ':' .. g .. ':' .. id end
-- group_concurrency as every script and the Rust side read it: decimal
-- digits only, clamped to 1..10000; anything else (absent, "nan", "1.5",
-- "0x10", "+3") counts as 1.
local function concurrency(v)
  if type(v) ~= 'string' or string.match(v, '^%d+$') == nil then return 1 end
  local k = tonumber(v)
  if k < 1 then return 1 end
  if k > 10000 then return 10000 end
  return k
end
local group, id = ARGV[4], ARGV[5]
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2]) == 0 then
  return 0
end
if redis.call('HGET', KEYS[3], slot(group, id)) == group then return 1 end
local k = concurrency(redis.call('HGET', KEYS[5], 'group_concurrency'))
local running = tonumber(redis.call('HGET', KEYS[2], group) or '0') or 0
local waiting = redis.call('XLEN', KEYS[4])
if running < k and waiting == 0 then
  redis.call('HSET', KEYS[3], slot(group, id), group)
  redis.call('HINCRBY', KEYS[2], group, 1)
  return 1
end
local entry = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3])
if #entry == 0 then return 0 end
local fields = entry[1][2]
local has_id, has_enqueued = false, false
for i = 1, #fields, 2 do
  if fields[i] == 'id' then has_id = true end
  if fields[i] == 'enqueued_at' then has_enqueued = true end
end
if not has_id then
  fields[#fields + 1] = 'id'
  fields[#fields + 1] = id
end
if not has_enqueued then
  fields[#fields + 1] = 'enqueued_at'
  fields[#fields + 1] = string.match(ARGV[3], '^(%d+)')
end
local r = redis.pcall('XADD', KEYS[4], '*', unpack(fields))
if type(r) == 'table' then return r end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
redis.pcall('HINCRBY', KEYS[6], 'group_waiting', 1)
redis.pcall('HINCRBY', KEYS[6], 'group_parked', 1)
-- Room but jobs waiting (an earlier release failed): let the oldest in.
if running < k then
  while running < k do
    local head = redis.call('XRANGE', KEYS[4], '-', '+', 'COUNT', 1)
    if #head == 0 then break end
    local f, next_id = head[1][2], nil
    for i = 1, #f, 2 do
      if f[i] == 'id' then next_id = f[i + 1] end
    end
    local added = redis.pcall('XADD', KEYS[1], '*', unpack(f))
    if type(added) == 'table' then break end
    redis.call('XDEL', KEYS[4], head[1][1])
    -- A second copy of an admitted job runs but takes no second place.
    if redis.call('HSETNX', KEYS[3], slot(group, next_id or head[1][1]), group) == 1 then
      running = redis.call('HINCRBY', KEYS[2], group, 1)
    end
    redis.pcall('HINCRBY', KEYS[6], 'group_waiting', -1)
  end
end
return 2
