--[[
  settle-14: the outcome of an attempt of a tracked job (one that keeps a
  record, holds a uniqueness key, is a step of a chain, a member of a
  batch, or belongs to a group): acknowledge (completed, discarded, expired, cancelled), schedule
  a retry, or dead-letter it; and, in the same atomic step:
  - write the record's new state and wake whoever waits for it,
  - release the uniqueness key when the job is final,
  - completed chain step: add the chain's next step to ready,
  - final batch member: count it in its batch, and when it is the last one,
    schedule the batch's completion job (due now);
  - final job of a group (admitted by group-enqueue-6 or group-start-6):
    free its place in the group and move the group's oldest waiting jobs
    to ready while the group has room.
  Plain jobs keep the cheaper batched ack-2, retry-3 and dead-3.

  Destination first, as in retry-3 and dead-3: the ZADD to scheduled (a
  retry), the XADD to dead, or the XADD of the next chain step is the first
  write; when it fails the error is returned and nothing is changed (the
  entry stays pending). The types of the record, key, done list and batch
  keys are checked before any write, and every write after the move is a
  pcall: nothing there can stop the script half-way.

  Exactly once: a job's final settle happens once (the entry must be pending
  on this consumer, and it is deleted here), and a batch member is counted
  only if its id is still in the batch's member set (SREM), so a member
  enqueued twice is still counted once and the completion job is scheduled
  once.

  KEYS[1]  PREFIX:{Q}:ready          stream
  KEYS[2]  PREFIX:{Q}:scheduled      zset (retrying; a batch's completion)
  KEYS[3]  PREFIX:{Q}:dead           stream (dead)
  KEYS[4]  PREFIX:{Q}:stats          hash of counters: processed, discarded,
           expired, cancelled, retried or dead + 1; dead_trimmed
  KEYS[5]  PREFIX:{Q}:job:ID         hash, the job's record (unused when
           ARGV[7] is "0")
  KEYS[6]  PREFIX:{Q}:unique:KEY     string (unused when ARGV[8] is "0")
  KEYS[7]  PREFIX:{Q}:done:ID        list: one element (the final state)
           pushed when the job is final, for waiters (BLMOVE); expires with
           the record
  KEYS[8]  PREFIX:{Q}:batch:B        hash of the batch the job belongs to:
           total, pending, succeeded, failed, callback (the completion
           job's scheduled member), keep_ms, done_at (unused when ARGV[11]
           is "0")
  KEYS[9]  PREFIX:{Q}:batch:B:members  set of member ids not yet final
  KEYS[10] PREFIX:{Q}:batch:B:failed   set of member ids that ended other
           than completed
  KEYS[11] PREFIX:{Q}:groups         hash: group → number of its jobs
           admitted (unused when ARGV[12] is "")
  KEYS[12] PREFIX:{Q}:grouped        hash: "<#group>:<group>:<job id>" →
                                     group, admitted jobs
  KEYS[13] PREFIX:{Q}:group:G        stream: the group's waiting jobs
  KEYS[14] PREFIX:{Q}:meta           hash: group_concurrency (default 1)

  ARGV[1]  consumer group
  ARGV[2]  consumer name
  ARGV[3]  entry id in ready; "" for a job already moved to dead by
           another script (reclaim-3's abandoned jobs): then there is no
           ownership check, no move and no counter, but everything else
           is done: the key released, the record and done list written,
           the batch counted, and, for a job of a group, its place in the
           group freed and the group's waiting jobs moved to ready (code
           steps 2 and 3 below); the state must be "dead"
  ARGV[4]  job id
  ARGV[5]  new state: "completed", "discarded", "expired", "cancelled",
           "retrying" or "dead"
  ARGV[6]  now, unix ms
  ARGV[7]  how long the record is kept after a final state, ms; "0" = the
           job has no record
  ARGV[8]  "1" to release the uniqueness key if it holds ARGV[4] (done by
           the caller only for a final state)
  ARGV[9]  completed: the result (MessagePack, bounded by the caller, ""
           for none); retrying, dead: the error message
  ARGV[10] retrying, dead: the error class ("" otherwise)
  ARGV[11] "1" when the job is a batch member, "0" otherwise
  ARGV[12] the job's group, "" when it has none
  ARGV[13] retrying: due time, unix ms; dead: approximate maximum length
           of the dead stream, "0" = unbounded; completed: "1" when
           ARGV[14..] is a next chain step, "0" otherwise
  ARGV[14] retrying: the scheduled member (MessagePack map of the job's
           fields for the next attempt); dead: ARGV[14..] are field, value
           ... of the dead entry (as dead-3); completed with a next chain
           step: ARGV[14..] are field, value ... of that step's entry

  Returns: 1 when settled, 0 when the entry is not pending on this consumer
           (lease lost: nothing is changed); or an error reply with nothing
           changed: "ERR settle-14: unknown state ..." when ARGV[5] is none
           of the six states; "ERR settle-14: only a dead job is settled
           without its entry" when ARGV[3] is "" and the state is not
           "dead"; "WRONGTYPE settle-14: ..." when a key is not of its type;
           "ERR settle-14: ..." for a keep time that is not a whole number
           of ms below 10^15; the first add's error unchanged. Checked in
           this order: the state, the empty entry id, ownership (0; not
           checked when ARGV[3] is ""), the key types, the keep time, then
           the add. So a call whose entry is not owned returns 0 even with
           a key of the wrong type or a bad keep time.
]]
local COUNTER = { completed = 'processed', discarded = 'discarded', expired = 'expired',
  cancelled = 'cancelled', retrying = 'retried', dead = 'dead' }

-- XADD to the dead stream, as in dead-3.
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

local function whole_ms(s)
  return type(s) == 'string' and string.match(s, '^%d+$') ~= nil and #s <= 15
end

local state, now, keep_ms = ARGV[5], ARGV[6], ARGV[7]
local counter = COUNTER[state]
if counter == nil then
  return redis.error_reply('ERR settle-14: unknown state ' .. tostring(state))
end
local moved = ARGV[3] == ''
if moved and state ~= 'dead' then
  return redis.error_reply('ERR settle-14: only a dead job is settled without its entry')
end
if not moved and #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2]) == 0 then
  return 0
end
-- The types of the keys this call will write (only those: each check is a
-- command), before any write.
local writes = {}
if keep_ms ~= '0' then writes[5] = 'hash'; writes[7] = 'list' end
if ARGV[8] == '1' then writes[6] = 'string' end
if ARGV[11] == '1' then writes[8] = 'hash'; writes[9] = 'set'; writes[10] = 'set' end
-- The group keys (11-14) are not checked: four commands per job for a
-- case only a hand can make. Their writes come after the move, each a
-- pcall; a key of another type leaves the group's place held (the group
-- waits) and loses nothing.
for i, want in pairs(writes) do
  local t = redis.call('TYPE', KEYS[i])
  t = type(t) == 'table' and t.ok or t
  if t ~= 'none' and t ~= want then
    return redis.error_reply('WRONGTYPE settle-14: ' .. KEYS[i] .. ' is a ' .. t .. ', not a ' .. want)
  end
end
if not whole_ms(keep_ms) then
  return redis.error_reply('ERR settle-14: the keep time must be a whole number of ms below 10^15')
end

-- 1. The move's destination first.
if moved then
  -- Already in dead: nothing to move.
elseif state == 'retrying' then
  local r = redis.pcall('ZADD', KEYS[2], ARGV[13], ARGV[14])
  if type(r) == 'table' and r.err then return r end
elseif state == 'dead' then
  local r = add_dead(KEYS[3], KEYS[4], ARGV[13], unpack(ARGV, 14))
  if type(r) == 'table' then return r end
elseif state == 'completed' and ARGV[13] == '1' then
  local r = redis.pcall('XADD', KEYS[1], '*', unpack(ARGV, 14))
  if type(r) == 'table' then return r end
end
if not moved then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
  redis.call('XDEL', KEYS[1], ARGV[3])
  redis.pcall('HINCRBY', KEYS[4], counter, 1)
end

-- 2. What the move means, each write a pcall (types checked above).
local final = state ~= 'retrying'
if ARGV[8] == '1' and final and redis.pcall('GET', KEYS[6]) == ARGV[4] then
  redis.pcall('DEL', KEYS[6])
end
if keep_ms ~= '0' then
  if final then
    redis.pcall('HSET', KEYS[5], 'id', ARGV[4], 'state', state, 'finished_at', now, 'entry', '')
    if state == 'completed' and ARGV[9] ~= '' then
      redis.pcall('HSET', KEYS[5], 'result', ARGV[9])
    end
    if state == 'dead' then
      redis.pcall('HSET', KEYS[5], 'last_error', ARGV[9], 'last_error_class', ARGV[10])
    end
    redis.pcall('PEXPIRE', KEYS[5], keep_ms)
    redis.pcall('DEL', KEYS[7])
    redis.pcall('RPUSH', KEYS[7], state)
    redis.pcall('PEXPIRE', KEYS[7], keep_ms)
  else
    redis.pcall('HSET', KEYS[5], 'id', ARGV[4], 'state', 'retrying', 'run_at', ARGV[13],
      'last_error', ARGV[9], 'last_error_class', ARGV[10], 'entry', '')
  end
end
if ARGV[11] == '1' and final and redis.pcall('SREM', KEYS[9], ARGV[4]) == 1 then
  if state == 'completed' then
    redis.pcall('HINCRBY', KEYS[8], 'succeeded', 1)
  else
    redis.pcall('HINCRBY', KEYS[8], 'failed', 1)
    redis.pcall('SADD', KEYS[10], ARGV[4])
  end
  local pending = redis.pcall('HINCRBY', KEYS[8], 'pending', -1)
  if pending == 0 then
    -- The last member: the completion job, due now (the promoter moves it
    -- to ready). Scheduled rather than added here, so its stored form is
    -- the plain scheduled member the producer wrote.
    local callback = redis.pcall('HGET', KEYS[8], 'callback')
    if type(callback) == 'string' and callback ~= '' then
      redis.pcall('ZADD', KEYS[2], now, callback)
    end
    redis.pcall('HSET', KEYS[8], 'done_at', now)
    local keep = redis.pcall('HGET', KEYS[8], 'keep_ms')
    if whole_ms(keep) and keep ~= '0' then
      for i = 8, 10 do redis.pcall('PEXPIRE', KEYS[i], keep) end
    end
  end
end

-- 3. A final job of a group frees its place; the group's oldest waiting
-- jobs take it, at the tail of ready (so groups take turns). A failed XADD
-- (OOM) leaves them waiting: the group's next enqueue or start lets them in.
local group = ARGV[12]
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
if group ~= '' and final and redis.pcall('HGET', KEYS[12], slot(group, ARGV[4])) == group then
  redis.pcall('HDEL', KEYS[12], slot(group, ARGV[4]))
  local running = redis.pcall('HINCRBY', KEYS[11], group, -1)
  if type(running) ~= 'number' then running = 0 end
  local k = redis.pcall('HGET', KEYS[14], 'group_concurrency')
  k = concurrency(type(k) == 'string' and k or nil)
  while running < k do
    local head = redis.pcall('XRANGE', KEYS[13], '-', '+', 'COUNT', 1)
    if type(head) ~= 'table' or head.err or #head == 0 then break end
    local f, next_id = head[1][2], nil
    for i = 1, #f, 2 do
      if f[i] == 'id' then next_id = f[i + 1] end
    end
    local added = redis.pcall('XADD', KEYS[1], '*', unpack(f))
    if type(added) == 'table' then break end
    redis.pcall('XDEL', KEYS[13], head[1][1])
    redis.pcall('HINCRBY', KEYS[4], 'group_waiting', -1)
    -- A second copy of an admitted job runs but takes no second place.
    if redis.pcall('HSETNX', KEYS[12], slot(group, next_id or head[1][1]), group) == 1 then
      running = redis.pcall('HINCRBY', KEYS[11], group, 1)
      if type(running) ~= 'number' then break end
    end
  end
  if running <= 0 and redis.pcall('XLEN', KEYS[13]) == 0 then
    redis.pcall('HDEL', KEYS[11], group)
    redis.pcall('DEL', KEYS[13])
  end
end
return 1
