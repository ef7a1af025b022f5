--[[
  admit-4: enqueue jobs to run now on a queue that has limits
  (`PREFIX:{Q}:limits`, see docs/flow-control.md): check the backlog and
  the age of the oldest undelivered job, and by the queue's policy refuse
  the jobs (`reject`, `wait`) or add them and shed the oldest undelivered
  jobs (`shed`). One atomic step, so the limit holds across every producer
  of the fleet. A queue whose limits hash is empty (or missing) gets a plain
  add.

  Backlog = undelivered entries of `ready`: XLEN minus the largest pending
  count of the stream's consumer groups (acknowledged entries are deleted,
  so a delivered entry still in the stream is pending), at most the lag a
  single group reports. Oldest age = now (ARGV[3]) minus the ms
  part of the id of the first entry after every group's last-delivered id.

  `reject` and `wait`: refused (nothing added) when backlog + n > max_ready,
  or when the oldest undelivered job is older than max_age_ms. All or
  nothing: n jobs are admitted together or not at all. Counted `rejected` +
  n when ARGV[2] is "1" (a waiting producer passes "0" until it gives up).

  `shed`: the jobs are added, then the oldest undelivered entries are
  removed while the backlog is over max_ready or the oldest is older than
  max_age_ms: at most 1000 per call (a queue far over a lowered limit comes
  down over several calls). An entry is removed only while undelivered:
  after the last-delivered id of every consumer group and in none of their
  pending lists (checked here, as purge-4 does), so a job a worker holds is
  never shed; nor is a job with state elsewhere (fields unique_key,
  record_ms, batch, batch_done, chain or group: its key, record, batch or
  group's place would be left waiting for good). Limits are read as 1 to 15
  decimal digits; any other value is no limit. Counted so the books balance (core/src/books.rs): `shed` + 1
  each, and `discarded` + 1 when dropped, or `dead` + 1 when kept in dead
  (`shed_to_dead` = "1": the job's fields, `id` and `enqueued_at` made
  explicit, then reason `shed`, error_class `shed`, error, deliveries 0,
  failed_at, worker "", queue). Destination first: the add to dead comes
  before the delete; an entry whose add fails (OOM, more than 1000 fields)
  is left in ready, not shed.

  KEYS[1]  PREFIX:{Q}:ready    stream
  KEYS[2]  PREFIX:{Q}:dead     stream
  KEYS[3]  PREFIX:{Q}:stats    hash of counters: rejected, shed, discarded,
           dead
  KEYS[4]  PREFIX:{Q}:limits   hash: max_ready, max_age_ms, policy
           (reject | shed | wait; default reject), shed_to_dead (1 | 0)

  ARGV[1]  queue name (the `queue` field of a shed dead letter)
  ARGV[2]  "1" to count a refusal in `rejected`, "0" not to
  ARGV[3]  now, unix ms (the server's clock: entry ids are its time)
  ARGV[4]  n, the number of jobs (1 to 1000)
  ARGV[5…] per job: its number of fields f, then f field, value pairs
           (f, name, value, name, value, ..., f, name, value, ...)

  Returns: { 1, shed, id1, ..., idn } when added (shed = entries shed by
           this call); { 0, backlog, max_ready, oldest_age_ms, max_age_ms,
           policy } when refused (nothing changed but `rejected`; a limit
           not set is -1); or an error reply: "ERR admit-4: ..." for bad
           arguments (nothing changed), or the XADD's error unchanged (jobs
           before it in this call are added: pass one job per call when that
           matters).
]]
local now = tonumber(ARGV[3])
if now == nil then return redis.error_reply('ERR admit-4: now must be a number of ms') end
local n = tonumber(ARGV[4])
if n == nil or n < 1 or n > 1000 or n ~= math.floor(n) then
  return redis.error_reply('ERR admit-4: n must be 1 to 1000')
end
local jobs = {}
local at = 5
for j = 1, n do
  local f = tonumber(ARGV[at])
  if f == nil or f < 1 or f > 1000 or f ~= math.floor(f) or at + 2 * f > #ARGV then
    return redis.error_reply('ERR admit-4: bad field count')
  end
  jobs[j] = { at + 1, at + 2 * f }
  at = at + 2 * f + 1
end
if at - 1 ~= #ARGV then return redis.error_reply('ERR admit-4: extra arguments') end

local function add_all()
  local ids = {}
  for j = 1, n do
    local r = redis.pcall('XADD', KEYS[1], '*', unpack(ARGV, jobs[j][1], jobs[j][2]))
    if type(r) == 'table' then return r end
    ids[j] = r
  end
  return ids
end

local limits = redis.call('HGETALL', KEYS[4])
local lim = {}
for i = 1, #limits, 2 do lim[limits[i]] = limits[i + 1] end
-- A limit is 1 to 15 decimal digits, read the same way by the Rust side
-- (core/src/backpressure.rs); anything else (1000.0, 1e3, 0x10, -1, inf)
-- is no limit.
local function whole(s)
  if type(s) ~= 'string' or #s > 15 or not string.match(s, '^%d+$') then return nil end
  return tonumber(s)
end
local max_ready = whole(lim['max_ready'])
local max_age = whole(lim['max_age_ms'])
local policy = lim['policy'] or 'reject'
if max_ready == nil and max_age == nil then
  local ids = add_all()
  if ids.err then return ids end
  return { 1, 0, unpack(ids) }
end

local function parse_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function after(a, b)
  local am, as = parse_id(a)
  local bm, bs = parse_id(b)
  if am == nil or bm == nil then return false end
  return am > bm or (am == bm and as > bs)
end

-- Every consumer group counts: an entry any group was handed is held.
local groups = {}
local last = '0-0'
local max_pending = 0
local lag = nil
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local name, ld, pending, glag
    for i = 1, #g, 2 do
      if g[i] == 'name' then name = g[i + 1] end
      if g[i] == 'last-delivered-id' then ld = g[i + 1] end
      if g[i] == 'pending' then pending = g[i + 1] end
      if g[i] == 'lag' then glag = g[i + 1] end
    end
    groups[#groups + 1] = name
    if ld and after(ld, last) then last = ld end
    if type(pending) == 'number' and pending > max_pending then max_pending = pending end
    lag = type(glag) == 'number' and glag or false
  end
end
local function backlog()
  local b = redis.call('XLEN', KEYS[1]) - max_pending
  if #groups == 1 and lag and lag < b then b = lag end
  if b < 0 then b = 0 end
  return b
end
local function oldest_age()
  local first = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', 1)
  if #first == 0 then return 0 end
  local ms = parse_id(first[1][1])
  if ms == nil or ms >= now then return 0 end
  return now - ms
end

if policy ~= 'shed' then
  local b = backlog()
  local age = max_age and oldest_age() or 0
  if (max_ready and b + n > max_ready) or (max_age and age > max_age) then
    if ARGV[2] == '1' then redis.pcall('HINCRBY', KEYS[3], 'rejected', n) end
    return { 0, b, max_ready or -1, age, max_age or -1, policy }
  end
  local ids = add_all()
  if ids.err then return ids end
  return { 1, 0, unpack(ids) }
end

local ids = add_all()
if ids.err then return ids end
-- The adds raised the lag the group reported by n.
if lag then lag = lag + n end

local to_dead = lim['shed_to_dead'] == '1'
local TRACKED = { unique_key = true, record_ms = true, batch = true, batch_done = true,
  chain = true, group = true }
local shed = 0
local budget = 1000
local cursor = '(' .. last
local excess = max_ready and (backlog() - max_ready) or 0
local done = false
while not done and budget > 0 do
  local batch = redis.call('XRANGE', KEYS[1], cursor, '+', 'COUNT', math.min(budget, 100))
  if #batch == 0 then break end
  for _, e in ipairs(batch) do
    local id, fields = e[1], e[2]
    cursor = '(' .. id
    local ms = parse_id(id)
    local too_old = max_age ~= nil and ms ~= nil and now - ms > max_age
    -- In id order: once an entry needs no shedding, no later one does.
    if excess <= 0 and not too_old then done = true break end
    budget = budget - 1
    -- A job with state elsewhere (a uniqueness key, a record, a batch, a
    -- chain, a group's place) is never shed: dropping it here would leave
    -- that state waiting for good (a key held, a group stopped).
    local moved = true
    for i = 1, #fields, 2 do
      if TRACKED[fields[i]] then moved = false break end
    end
    for _, g in ipairs(moved and groups or {}) do
      if #redis.call('XPENDING', KEYS[1], g, id, id, 1) > 0 then moved = false break end
    end
    if moved and to_dead then
      local row = {}
      local has_id, has_enq = false, false
      for i = 1, #fields, 2 do
        if fields[i] == 'id' then has_id = true end
        if fields[i] == 'enqueued_at' then has_enq = true end
        row[#row + 1] = fields[i]
        row[#row + 1] = fields[i + 1]
      end
      if not has_id then row[#row + 1] = 'id'; row[#row + 1] = id end
      if not has_enq then row[#row + 1] = 'enqueued_at'; row[#row + 1] = tostring(ms or now) end
      local why = too_old and ('older than max_age_ms ' .. max_age)
        or ('backlog over max_ready ' .. max_ready)
      local ctx = { 'reason', 'shed', 'error_class', 'shed', 'error', 'shed: ' .. why,
        'deliveries', '0', 'failed_at', tostring(now), 'worker', '', 'queue', ARGV[1] }
      for _, v in ipairs(ctx) do row[#row + 1] = v end
      -- Lua passes at most about 8000 values to one command.
      if #row > 7900 then
        moved = false
      else
        local r = redis.pcall('XADD', KEYS[2], '*', unpack(row))
        if type(r) == 'table' then moved = false end
      end
    end
    if moved then
      redis.call('XDEL', KEYS[1], id)
      shed = shed + 1
      excess = excess - 1
      redis.pcall('HINCRBY', KEYS[3], to_dead and 'dead' or 'discarded', 1)
    end
    if budget <= 0 then break end
  end
end
if shed > 0 then redis.pcall('HINCRBY', KEYS[3], 'shed', shed) end
return { 1, shed, unpack(ids) }
