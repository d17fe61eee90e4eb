-- correct_v2: the provider reports fewer remaining than we think: lower the level, never raise it.
-- KEYS[1]: the bucket. ARGV: capacity, refill_per_sec, remaining. Redis TIME is the only clock.
-- A bucket is a string "<level> <TIME of that level>" with a TTL (admit_v7 describes the layout).

local MARGIN = 10
local MAX_TTL_MS = 3600000 -- decide.MAX_TTL_SECONDS: a TTL Redis accepts, whatever the level
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local cap, rate, remaining = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

local v = redis.call('GET', KEYS[1])
local level = cap
if v then
  local l, t = string.match(v, '^(%S+) (%S+)$')
  level = math.min(cap, tonumber(l) + math.max(0, now - tonumber(t)) * rate)
end
if remaining >= level then return 0 end
local ttl = math.min(math.ceil((2 * (cap - remaining) / rate + MARGIN) * 1000), MAX_TTL_MS)
redis.call('SET', KEYS[1], string.format('%.17g', remaining) .. ' ' .. string.format('%.17g', now), 'PX', ttl)
return 1
