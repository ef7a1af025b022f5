--[[
  reap-1: remove consumers that have been idle for long and hold no pending
  entries, so a fleet that churns pods does not grow the group without bound.
  The pending check and the delete are one step: a consumer that fetched a job
  in between is never removed with its jobs.

  KEYS[1]  PREFIX:{Q}:ready   stream

  ARGV[1]  consumer group
  ARGV[2]  minimum idle time, ms
  ARGV[3]  consumer name of the caller (never removed)

  Returns: the number of consumers removed.
]]
local removed = 0
local min_idle = tonumber(ARGV[2])
for _, info in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local c = {}
  for j = 1, #info, 2 do
    c[info[j]] = info[j + 1]
  end
  if c['name'] ~= ARGV[3] and c['pending'] == 0 and c['idle'] ~= nil and c['idle'] > min_idle then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], c['name'])
    removed = removed + 1
  end
end
return removed
