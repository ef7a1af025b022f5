--[[
  cron-fire-2: enqueue the job of one tick of a cron schedule, once for
  the whole fleet. Every worker that declares the schedule calls it at each
  tick (by its own clock); the first call with a tick newer than the last
  one fired adds the job and records the tick, in one atomic step, and
  every other call for that tick (or an older one) changes nothing. So
  clock skew between workers can neither fire a tick twice nor fire an
  older tick after a newer one.

  A worker's clock may be ahead of the others': a tick more than 2 s
  ahead of the Redis server's clock (TIME, read here for that one
  decision) is refused, so a fast worker cannot fire ticks early and make
  the fleet skip the real ones; it fires nothing until its clock is right
  (the Rust worker warns). A stored last tick that is not a finite number,
  or is more than 2 s ahead of the server's clock (the same 2 s allowed
  for a tick; written by a fast worker before this check, or by hand),
  counts as never fired and is overwritten, so it cannot silence the
  schedule. A stored tick up to 2 s ahead still counts: ticks not newer
  than it are not fired.

  Destination first: the XADD is the first write, and the tick is recorded
  only after it succeeded, so an error of the add (OOM, WRONGTYPE) changes
  nothing and the tick can be fired again.

  KEYS[1]  PREFIX:{Q}:cron     hash, schedule name → last tick fired (unix
           ms, decimal)
  KEYS[2]  PREFIX:{Q}:ready    stream

  ARGV[1]  schedule name
  ARGV[2]  the tick, unix ms (a whole number, at most 15 digits)
  ARGV[3]  field, value, field, value ... of the job's stream entry (type,
           payload, id = "cron:NAME:TICK", enqueued_at; see
           docs/wire-format.md)

  Returns: { 1, entry id } when the job was added and the tick recorded;
           { 0, last tick } when the tick is not newer than the last one
           fired (already fired by this or another worker): nothing
           changed; { 2, server time in unix ms } when the tick is more
           than 2 s ahead of the server's clock: nothing changed; or an
           error reply with nothing changed: "ERR cron-fire-2: ..." for a
           tick that is not a whole number of ms or no entry fields, or the
           XADD's error unchanged. A stored value that is not a finite
           number, or is more than 2 s ahead of the server's clock, counts
           as never fired (it is overwritten).
]]
local name, tick = ARGV[1], ARGV[2]
if not string.match(tick, '^%d+$') or #tick > 15 then
  return redis.error_reply('ERR cron-fire-2: the tick must be a whole number of ms below 10^15')
end
if #ARGV < 4 or #ARGV % 2 ~= 0 then
  return redis.error_reply('ERR cron-fire-2: the entry needs field, value pairs')
end
local t = redis.call('TIME')
local server_now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local AHEAD = 2000
if tonumber(tick) > server_now + AHEAD then
  return { 2, server_now }
end
local last = tonumber(redis.call('HGET', KEYS[1], name) or '')
if last and (last ~= last or last > server_now + AHEAD) then
  last = nil
end
if last and tonumber(tick) <= last then
  return { 0, last }
end
local entry = redis.pcall('XADD', KEYS[2], '*', unpack(ARGV, 3))
if type(entry) == 'table' and entry.err then return entry end
redis.call('HSET', KEYS[1], name, tick)
return { 1, entry }
