--[[
  group-enqueue-6: enqueue one job of a group (field `group`: a tenant, a
  customer, an account: the jobs whose order or share matters). A group
  has at most `group_concurrency` of its jobs admitted at once (the field
  of PREFIX:{Q}:meta, default 1: one at a time, in enqueue order); an
  admitted job is in `ready`, running, or waiting for a retry. A job of a
  group that is full, or that already has jobs waiting, waits in the
  group's own stream, behind them; each job of the group that ends (see
  settle-14) lets the next one into `ready`, at its tail. So a group with
  a backlog of 100,000 jobs has at most `group_concurrency` of them in
  `ready` at any time, and another group's job waits behind those, not
  behind the backlog: round-robin between groups.

  Destination first: the XADD (to ready, or to the group's stream) is the
  first write; nothing is changed when it fails.

  KEYS[1]  PREFIX:{Q}:ready     stream
  KEYS[2]  PREFIX:{Q}:groups    hash: group → number of its jobs admitted
  KEYS[3]  PREFIX:{Q}:grouped   hash: job id → group, for every admitted job
  KEYS[4]  PREFIX:{Q}:group:G   stream: the group's waiting jobs, in order
  KEYS[5]  PREFIX:{Q}:meta      hash: group_concurrency (default 1)
  KEYS[6]  PREFIX:{Q}:stats     hash of counters: group_waiting (a gauge:
           jobs waiting in their group's stream)

  ARGV[1]  the group, 1 to 256 bytes (must equal the job's `group` field)
  ARGV[2]  the job id (must equal the job's `id` field, which is required)
  ARGV[3..] field, value, field, value ... of the job's entry

  Returns: { 1, entry id } when added to ready (admitted); { 2, entry id
           in the group's stream } when it waits behind its group;
           { 1, "" } when this job id is already admitted in this group (a
           retried call: nothing is added twice); or an error reply with
           nothing changed: "ERR group-enqueue-6: ..." for bad arguments,
           or the XADD's error unchanged.
]]
local group, id = ARGV[1], ARGV[2]
if #group < 1 or #group > 256 then
  return redis.error_reply('ERR group-enqueue-6: the group must be 1 to 256 bytes')
end
if id == '' or #ARGV < 4 or #ARGV % 2 ~= 0 then
  return redis.error_reply('ERR group-enqueue-6: a job id and field, value pairs are required')
end
local has_group, has_id = false, false
for i = 3, #ARGV, 2 do
  if ARGV[i] == 'group' then has_group = ARGV[i + 1] == group end
  if ARGV[i] == 'id' then has_id = ARGV[i + 1] == id end
end
if not (has_group and has_id) then
  return redis.error_reply('ERR group-enqueue-6: the fields must carry this group and this id')
end

local function limit(meta)
  local k = tonumber(redis.call('HGET', meta, 'group_concurrency') or '1')
  if k == nil or k < 1 then return 1 end
  return math.floor(k)
end

-- Moves the group's oldest waiting jobs to ready while it has room; a
-- failed XADD (OOM) leaves them waiting for the next call that looks.
local function release(ready, groups, grouped, waiting, stats, k)
  local running = tonumber(redis.call('HGET', groups, group) or '0') or 0
  while running < k do
    local head = redis.call('XRANGE', waiting, '-', '+', 'COUNT', 1)
    if #head == 0 then break end
    local fields, next_id = head[1][2], nil
    for i = 1, #fields, 2 do
      if fields[i] == 'id' then next_id = fields[i + 1] end
    end
    local r = redis.pcall('XADD', ready, '*', unpack(fields))
    if type(r) == 'table' then break end
    redis.call('XDEL', waiting, head[1][1])
    redis.call('HSET', grouped, next_id or head[1][1], group)
    running = redis.call('HINCRBY', groups, group, 1)
    redis.pcall('HINCRBY', stats, 'group_waiting', -1)
  end
end

if redis.call('HGET', KEYS[3], id) == group then return { 1, '' } end
local k = limit(KEYS[5])
local running = tonumber(redis.call('HGET', KEYS[2], group) or '0') or 0
if running < k and redis.call('XLEN', KEYS[4]) == 0 then
  local r = redis.pcall('XADD', KEYS[1], '*', unpack(ARGV, 3))
  if type(r) == 'table' then return r end
  redis.call('HSET', KEYS[3], id, group)
  redis.call('HINCRBY', KEYS[2], group, 1)
  return { 1, r }
end
local r = redis.pcall('XADD', KEYS[4], '*', unpack(ARGV, 3))
if type(r) == 'table' then return r end
redis.pcall('HINCRBY', KEYS[6], 'group_waiting', 1)
-- Room but jobs waiting: an earlier release failed; let them in now.
if running < k then release(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6], k) end
return { 2, r }
