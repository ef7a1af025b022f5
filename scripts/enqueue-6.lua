--[[
  enqueue-6: enqueue one job that carries a uniqueness key or keeps a job
  record (or both): the reservation of the key, the add to ready or
  scheduled and the record's first state are one atomic step. Jobs with
  neither are enqueued with a plain XADD or ZADD (docs/wire-format.md).

  A duplicate (the key is held by another job) changes nothing but the
  counter `duplicates`, and returns the id of the job holding the key.
  Destination first: the XADD or ZADD is the first write; the key and the
  record are written only after it succeeded, so an error of the add (OOM,
  WRONGTYPE, an exhausted stream id) changes nothing.

  KEYS[1]  PREFIX:{Q}:ready          stream
  KEYS[2]  PREFIX:{Q}:scheduled      zset, score = due time (unix ms)
  KEYS[3]  PREFIX:{Q}:stats          hash of counters: duplicates + 1 per
           refused duplicate
  KEYS[4]  PREFIX:{Q}:unique:KEY     string, value = the id of the job that
           holds KEY (any key of the queue when ARGV[2] is empty: unused)
  KEYS[5]  PREFIX:{Q}:job:ID         hash, the job's record (unused when
           ARGV[4] is "0")
  KEYS[6]  PREFIX:{Q}:done:ID        list of a final job's waiters (see
           settle-14): deleted with a new record, so an old final state
           never answers for this one

  ARGV[1]  job id
  ARGV[2]  uniqueness mode: "queued", "done", "ttl", or "" for none
  ARGV[3]  lifetime of the reservation, ms; "0" = until released
  ARGV[4]  how long the record is kept after a final state, ms; "0" = no
           record
  ARGV[5]  now, unix ms (the record's enqueued_at)
  ARGV[6]  due time, unix ms; "0" = ready now (XADD to ready)
  ARGV[7]  job type (for the record)
  ARGV[8]  when due: the scheduled member (MessagePack map of the job's
           fields); when ready now: ARGV[8..] are field, value, field, value
           ... of the stream entry

  Returns: { 1, job id } when enqueued, or when the key is already held by
           this very id, or when the job keeps a record and its id has a
           record that is not final (a retried call whose first reply was
           lost, or the same id enqueued twice: nothing is added twice); { 0, id of the job holding the key } for a
           duplicate (nothing enqueued); or an error reply, with nothing
           changed: the add's error unchanged, or "ERR enqueue-6: ..." for a
           lifetime or keep time that is not a whole number of ms.
]]
local id, mode, lock_ms, keep_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
-- Checked before any write: PX and PEXPIRE refusing them afterwards would
-- leave the job added without its key or record.
for _, ms in ipairs({ lock_ms, keep_ms }) do
  if not string.match(ms, '^%d+$') or #ms > 15 then
    return redis.error_reply('ERR enqueue-6: a lifetime must be a whole number of ms below 10^15')
  end
end
-- A job that keeps a record and whose id already has a live record (not
-- final) is already enqueued: a retried call, or the same id twice.
local FINAL = { completed = true, dead = true, discarded = true, expired = true, cancelled = true }
if keep_ms ~= '0' then
  local state = redis.call('HGET', KEYS[5], 'state')
  if state and not FINAL[state] then return { 1, id } end
end
if mode ~= '' then
  local holder = redis.call('GET', KEYS[4])
  if holder == id then return { 1, id } end
  if holder then
    redis.pcall('HINCRBY', KEYS[3], 'duplicates', 1)
    return { 0, holder }
  end
end
local due = ARGV[6]
local entry = ''
local r
if due == '0' then
  r = redis.pcall('XADD', KEYS[1], '*', unpack(ARGV, 8))
  if type(r) == 'table' then return r end
  entry = r
else
  r = redis.pcall('ZADD', KEYS[2], due, ARGV[8])
  if type(r) == 'table' and r.err then return r end
end
if mode ~= '' then
  if lock_ms ~= '0' then
    redis.call('SET', KEYS[4], id, 'PX', lock_ms)
  else
    redis.call('SET', KEYS[4], id)
  end
end
if keep_ms ~= '0' then
  redis.call('DEL', KEYS[5], KEYS[6])
  redis.call('HSET', KEYS[5], 'id', id, 'type', ARGV[7],
    'state', due == '0' and 'ready' or 'scheduled', 'attempt', 0,
    'enqueued_at', ARGV[5], 'run_at', due == '0' and ARGV[5] or due,
    'entry', entry, 'keep_ms', keep_ms)
  if mode == 'queued' or mode == 'done' then
    -- For cancel-4, which releases the key of a cancelled job (a ttl key
    -- is held for its lifetime, whatever the job does).
    redis.call('HSET', KEYS[5], 'unique_lock', KEYS[4])
  end
end
return { 1, id }
