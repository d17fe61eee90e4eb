-- cooldown_v2: cool a deployment (and its account) down for every replica, and drain buckets to 0.
-- KEYS: ncd cooldown keys, then the buckets to drain.
-- ARGV: ncd, milliseconds, then per drained bucket (capacity, refill_per_sec).
-- A cooldown is a string "<TIME it ends>" whose TTL is the time left; it is extended, never shortened.
-- A bucket is a string "<level> <TIME of that level>" with a TTL (admit_v7 describes the layout).

local MARGIN = 10
local MAX_TTL_MS = 3600000 -- decide.MAX_TTL_SECONDS: a TTL Redis accepts, whatever the level
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local stamp = string.format('%.17g', now)
local ncd, ms = tonumber(ARGV[1]), tonumber(ARGV[2])

for k = 1, ncd do
  if ms > 0 and redis.call('PTTL', KEYS[k]) < ms then
    redis.call('SET', KEYS[k], string.format('%.17g', now + ms / 1000), 'PX', ms)
  end
end
for k = ncd + 1, #KEYS do
  local a = 2 * (k - ncd) + 1
  local cap, rate = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local v = redis.call('GET', KEYS[k])
  local level = cap
  if v then
    local l, t = string.match(v, '^(%S+) (%S+)$')
    level = math.min(cap, tonumber(l) + math.max(0, now - tonumber(t)) * rate)
  end
  level = math.min(level, 0)
  local ttl = math.min(math.ceil((2 * (cap - level) / rate + MARGIN) * 1000), MAX_TTL_MS)
  redis.call('SET', KEYS[k], string.format('%.17g', level) .. ' ' .. stamp, 'PX', ttl)
end
return ncd
