--[[
  withdraw-4: cancel a job that keeps no record, before any worker fetched
  it (`jobstream job cancel` for plain jobs; recorded jobs use cancel-4).
  A ready entry is deleted only while it is undelivered: after the
  last-delivered id of every consumer group of the stream and in none of
  their pending lists, checked here, in the same atomic step as the delete,
  so a worker cannot fetch it in between; a ready entry that carries a
  `record_ms` or `batch` field is refused (-2) before that check. A
  scheduled member is removed by its exact bytes, without looking inside:
  one that carries `record_ms` or `batch` is removed like any other (the
  caller must leave tracked jobs out; `jobstream job cancel` does).

  Counted so the books balance: a ready entry deleted adds 1 to
  `cancelled` (a removal from ready, in the books); a scheduled member
  removed adds 1 to `cancelled_scheduled` (it was never in ready: outside
  the books, like `dead_scheduled`). A uniqueness key this job holds is
  released.

  Nothing to write first: the job goes nowhere. The delete (XDEL, ZREM) is
  never refused under maxmemory, and the HINCRBY after it then passes too.

  KEYS[1]  PREFIX:{Q}:ready      stream
  KEYS[2]  PREFIX:{Q}:scheduled  zset, score = due time (unix ms)
  KEYS[3]  PREFIX:{Q}:stats      hash of counters
  KEYS[4]  PREFIX:{Q}:unique:KEY string: the job's uniqueness key when it has
           one (deleted only when it holds this job's id); any key of the
           queue otherwise (unused)

  ARGV[1]  consumer group (informational: every group is checked)
  ARGV[2]  where the job is: `ready` or `scheduled` (any other value is
           taken as `ready`)
  ARGV[3]  the ready entry id, or the scheduled member (its exact bytes)
  ARGV[4]  job id (what the uniqueness key holds)
  ARGV[5]  `1` when KEYS[4] is the job's uniqueness key, else empty

  Returns: 1 the ready entry was deleted; 2 the scheduled member was
           removed; 0 not there any more (promoted, fetched and finished,
           or removed already): nothing changed; -1 the entry was fetched by
           a worker (pending, or at or before the group's last-delivered
           id): nothing changed, it cannot be withdrawn; -2 (ready only)
           the entry has a `record_ms` or `batch` field: it keeps a record
           or is a batch member (use cancel-4), nothing changed; checked
           before -1, so such an entry returns -2 even when fetched. A
           scheduled member is never -2: it is removed (2) whatever its
           fields.
]]
local function parse_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

-- true when stream id a is after b
local function after(a, b)
  local am, as = parse_id(a)
  local bm, bs = parse_id(b)
  if am == nil or bm == nil then return false end
  return am > bm or (am == bm and as > bs)
end

local function release_key()
  if ARGV[5] == '1' then
    local holder = redis.pcall('GET', KEYS[4])
    if holder == ARGV[4] then redis.call('DEL', KEYS[4]) end
  end
end

if ARGV[2] == 'scheduled' then
  if redis.call('ZSCORE', KEYS[2], ARGV[3]) == false then return 0 end
  redis.call('ZREM', KEYS[2], ARGV[3])
  release_key()
  redis.pcall('HINCRBY', KEYS[3], 'cancelled_scheduled', 1)
  return 2
end

local entry = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3], 'COUNT', 1)[1]
if entry == nil then return 0 end
local fields = entry[2]
for i = 1, #fields, 2 do
  if fields[i] == 'record_ms' or fields[i] == 'batch' then return -2 end
end

-- Delivered to any consumer group? (Workers may read with another group
-- than the caller names; no group yet: nothing was ever delivered.)
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
for _, g in ipairs(groups) do
  local name, last
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] end
    if g[i] == 'last-delivered-id' then last = g[i + 1] end
  end
  if last ~= nil and not after(ARGV[3], last) then return -1 end
  local pending = redis.call('XPENDING', KEYS[1], name, ARGV[3], ARGV[3], 1)
  if #pending > 0 then return -1 end
end

redis.call('XDEL', KEYS[1], ARGV[3])
release_key()
redis.pcall('HINCRBY', KEYS[3], 'cancelled', 1)
return 1
