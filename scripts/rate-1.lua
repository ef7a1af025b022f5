--[[
  rate-1: takes up to N tokens from a fleet-wide rate limit (GCRA, the
  generic cell rate algorithm): a worker asks before it fetches, and
  fetches at most what it was granted. Every worker of the fleet shares
  the one key, and the time is the server's (TIME), so the limit holds
  whatever the workers' clocks say.

  The key holds the theoretical arrival time (TAT) of the next token: a
  token is due every `interval` microseconds, and at most `burst` tokens
  may be taken ahead of time (after a quiet spell). A limit of 100 per
  second with a burst of 10: interval 10000 µs, burst 10.

  KEYS[1]  PREFIX:{Q}:rate   string: the TAT, unix µs (server clock); it
           expires once it is in the past (a quiet limiter is a full one)

  ARGV[1]  interval between tokens, µs (≥ 1)
  ARGV[2]  burst, tokens (≥ 1)
  ARGV[3]  tokens wanted (≥ 1)

  Returns: {granted, wait_ms}: granted ≥ 1 and wait_ms 0; or granted 0
           and wait_ms, how long until one token is due. Or
           `ERR rate-1: …` for arguments out of range (nothing changed).
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
if not interval or interval < 1 or not burst or burst < 1 or not want or want < 1 then
  return redis.error_reply('ERR rate-1: interval, burst and tokens must be at least 1')
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
-- Tokens that fit before the TAT runs more than `burst` tokens past now.
local room = math.floor((now + burst * interval - tat) / interval)
local granted = math.min(want, room)
if granted < 1 then
  local wait_us = tat + interval - burst * interval - now
  return {0, math.max(1, math.ceil(wait_us / 1000))}
end
tat = tat + granted * interval
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
return {granted, 0}
