--[[
  group-enqueue-6: enqueue jobs of one group (field `group`: a tenant, a
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

  Destination first: each job's XADD (to ready, or to the group's stream)
  comes before the bookkeeping that follows it; a failed XADD stops the
  call there: the jobs before it are enqueued, it and the ones after it
  are not (the caller retries them; a retried admitted job is not added
  twice).

  One call takes up to 1000 jobs of one group, in order: the order of a
  group is the order of its calls and, within a call, of its jobs.

  KEYS[1]  PREFIX:{Q}:ready     stream
  KEYS[2]  PREFIX:{Q}:groups    hash: group → number of its jobs admitted
  KEYS[3]  PREFIX:{Q}:grouped   hash: "<#group>:<group>:<job id>" → group, for
           every admitted job (see wire-format.md)
  KEYS[4]  PREFIX:{Q}:group:G   stream: the group's waiting jobs, in order
  KEYS[5]  PREFIX:{Q}:meta      hash: group_concurrency (default 1)
  KEYS[6]  PREFIX:{Q}:stats     hash of counters: group_waiting (a gauge:
           jobs waiting in their group's stream)

  ARGV[1]  the group, 1 to 256 bytes (must equal each job's `group` field)
  ARGV[2]  n, the number of jobs (1 to 1000)
  ARGV[3…] per job: its id (must equal its `id` field), its number of
           fields f, then f field, value pairs; the fields carry `group`
           and `id` exactly once each, both UTF-8 (so the worker that
           meets the job, even one it cannot decode, reads the same group
           and id this script admitted it under)
           (id, f, name, value, ..., id, f, name, value, ...)

  Returns: { admitted, waiting }: how many of the jobs were added to ready
           (or were already admitted: a retried call) and how many wait
           behind their group; or an error reply: "ERR group-enqueue-6:
           ..." for bad arguments (checked before anything is written), or
           the XADD's error unchanged (the jobs before it are enqueued).
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
-- Whether s is UTF-8 (no overlong forms, no surrogates), as Rust reads it.
local function utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c, len = string.byte(s, i), 0
    if c < 0x80 then len = 1
    elseif c >= 0xC2 and c <= 0xDF then len = 2
    elseif c >= 0xE0 and c <= 0xEF then len = 3
    elseif c >= 0xF0 and c <= 0xF4 then len = 4
    else return false end
    if i + len - 1 > n then return false end
    for j = i + 1, i + len - 1 do
      local b = string.byte(s, j)
      if b < 0x80 or b > 0xBF then return false end
    end
    local b = string.byte(s, i + 1)
    if (c == 0xE0 and b < 0xA0) or (c == 0xED and b > 0x9F)
        or (c == 0xF0 and b < 0x90) or (c == 0xF4 and b > 0x8F) then
      return false
    end
    i = i + len
  end
  return true
end

local group = ARGV[1]
if not utf8(group) then
  return redis.error_reply('ERR group-enqueue-6: the group must be UTF-8')
end
if #group < 1 or #group > 256 then
  return redis.error_reply('ERR group-enqueue-6: the group must be 1 to 256 bytes')
end
local n = tonumber(ARGV[2])
if n == nil or n < 1 or n > 1000 or n ~= math.floor(n) then
  return redis.error_reply('ERR group-enqueue-6: n must be 1 to 1000')
end
-- Every job checked before any write: { id, first field index, last }.
local jobs = {}
local pos = 3
for _ = 1, n do
  local id, f = ARGV[pos], tonumber(ARGV[pos + 1])
  if id == nil or id == '' or f == nil or f < 1 or f > 1024 or f ~= math.floor(f)
      or pos + 1 + 2 * f > #ARGV then
    return redis.error_reply('ERR group-enqueue-6: each job needs an id and 1 to 1024 field, value pairs')
  end
  local first, last = pos + 2, pos + 1 + 2 * f
  local groups_seen, ids_seen, has_group, has_id = 0, 0, false, false
  for i = first, last, 2 do
    if ARGV[i] == 'group' then groups_seen = groups_seen + 1; has_group = ARGV[i + 1] == group end
    if ARGV[i] == 'id' then ids_seen = ids_seen + 1; has_id = ARGV[i + 1] == id end
  end
  if not (has_group and has_id) or groups_seen ~= 1 or ids_seen ~= 1 then
    return redis.error_reply('ERR group-enqueue-6: each job must carry this group and its id in its fields, once each')
  end
  if not utf8(id) then
    return redis.error_reply('ERR group-enqueue-6: a job id must be UTF-8')
  end
  jobs[#jobs + 1] = { id, first, last }
  pos = last + 1
end
if pos ~= #ARGV + 1 then
  return redis.error_reply('ERR group-enqueue-6: arguments left over after n jobs')
end

local k = concurrency(redis.call('HGET', KEYS[5], 'group_concurrency'))
local running = tonumber(redis.call('HGET', KEYS[2], group) or '0') or 0
local waiting = redis.call('XLEN', KEYS[4])

-- Moves the group's oldest waiting jobs to ready while it has room; a
-- failed XADD (OOM) leaves them waiting for the next call that looks.
local function release()
  while running < k and waiting > 0 do
    local head = redis.call('XRANGE', KEYS[4], '-', '+', 'COUNT', 1)
    if #head == 0 then waiting = 0; break end
    local f, next_id = head[1][2], nil
    for i = 1, #f, 2 do
      if f[i] == 'id' then next_id = f[i + 1] end
    end
    local r = redis.pcall('XADD', KEYS[1], '*', unpack(f))
    if type(r) == 'table' then break end
    redis.call('XDEL', KEYS[4], head[1][1])
    -- A second copy of an admitted job runs (at least once) but takes no
    -- second place: its settle finds the place freed and frees nothing.
    if redis.call('HSETNX', KEYS[3], slot(group, next_id or head[1][1]), group) == 1 then
      running = redis.call('HINCRBY', KEYS[2], group, 1)
    end
    waiting = waiting - 1
    redis.pcall('HINCRBY', KEYS[6], 'group_waiting', -1)
  end
end

-- Room but jobs waiting (an earlier release failed): let them in first.
release()
local admitted, queued = 0, 0
for _, job in ipairs(jobs) do
  local id, first, last = job[1], job[2], job[3]
  if redis.call('HGET', KEYS[3], slot(group, id)) == group then
    admitted = admitted + 1
  elseif running < k and waiting == 0 then
    local r = redis.pcall('XADD', KEYS[1], '*', unpack(ARGV, first, last))
    if type(r) == 'table' then return r end
    redis.call('HSET', KEYS[3], slot(group, id), group)
    running = redis.call('HINCRBY', KEYS[2], group, 1)
    admitted = admitted + 1
  else
    local r = redis.pcall('XADD', KEYS[4], '*', unpack(ARGV, first, last))
    if type(r) == 'table' then return r end
    waiting = waiting + 1
    redis.pcall('HINCRBY', KEYS[6], 'group_waiting', 1)
    queued = queued + 1
  end
end
return { admitted, queued }
