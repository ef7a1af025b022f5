--[[
  purge-4: remove jobs of one queue for good (`jobstream queue purge`),
  given by id: undelivered ready entries, scheduled members, or dead
  letters. Never a job a worker holds: a ready entry is deleted only while
  it is undelivered (after the last-delivered id of every consumer group of
  the stream, and in none of their pending lists), checked here in the same
  atomic step as the delete.
  Bounded: at most 1000 ids per call; the caller lists a page, calls, and
  goes on.

  Counted so the books balance (see core/src/books.rs):
  - ready: `discarded` + n (a removal from ready, in the books) and
    `purged_ready` + n (of `discarded`, those purged);
  - scheduled: `purged_scheduled` + n (never in ready: outside the books);
  - dead: `purged_dead` + n (the dead stream then holds `dead` -
    `dead_trimmed` - `replayed` - `purged_dead` entries, less those deleted
    with `jobstream dlq discard`).

  Nothing to write first: the jobs go nowhere. Deletes (XDEL, ZREM) are never
  refused under maxmemory, and the HINCRBY after them then passes too.

  KEYS[1]  PREFIX:{Q}:ready      stream
  KEYS[2]  PREFIX:{Q}:scheduled  zset
  KEYS[3]  PREFIX:{Q}:dead       stream
  KEYS[4]  PREFIX:{Q}:stats      hash of counters

  ARGV[1]  consumer group (informational: every group is checked)
  ARGV[2]  what: `ready`, `scheduled` or `dead`
  ARGV[3…] ready entry ids, scheduled members (exact bytes) or dead entry
           ids (at most 1000)

  Returns: the number removed. Ids no longer there, and ready entries a
           worker has fetched since they were listed, are skipped and not
           counted. Or `ERR purge-4: …` for an unknown ARGV[2] or more than
           1000 ids (nothing changed).
]]
local what = ARGV[2]
if #ARGV - 2 > 1000 then return redis.error_reply('ERR purge-4: more than 1000 ids') end

if what == 'scheduled' then
  local n = 0
  for i = 3, #ARGV do
    n = n + redis.call('ZREM', KEYS[2], ARGV[i])
  end
  if n > 0 then redis.pcall('HINCRBY', KEYS[4], 'purged_scheduled', n) end
  return n
end

if what == 'dead' then
  local n = 0
  for i = 3, #ARGV do
    n = n + redis.call('XDEL', KEYS[3], ARGV[i])
  end
  if n > 0 then redis.pcall('HINCRBY', KEYS[4], 'purged_dead', n) end
  return n
end

if what ~= 'ready' then return redis.error_reply('ERR purge-4: unknown state') end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end

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

-- Every consumer group of the stream counts, not only ARGV[1]'s: workers
-- may read with another group than the caller names, and an entry any
-- group was handed is held by a worker.
local groups = {}
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local name, ld
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] end
    if g[i] == 'last-delivered-id' then ld = g[i + 1] end
  end
  groups[#groups + 1] = { name, ld }
end

local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local undelivered = true
  for _, g in ipairs(groups) do
    if g[2] ~= nil and not after(id, g[2]) then
      undelivered = false
    elseif #redis.call('XPENDING', KEYS[1], g[1], id, id, 1) > 0 then
      undelivered = false
    end
    if not undelivered then break end
  end
  if undelivered then
    n = n + redis.call('XDEL', KEYS[1], id)
  end
end
if n > 0 then
  redis.pcall('HINCRBY', KEYS[4], 'discarded', n)
  redis.pcall('HINCRBY', KEYS[4], 'purged_ready', n)
end
return n
