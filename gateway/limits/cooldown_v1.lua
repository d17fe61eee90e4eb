-- cooldown_v1: cool a deployment (and its account) down for every replica, and drain buckets to 0.
-- KEYS: ncd cooldown keys, then the buckets to drain.
-- ARGV: ncd, milliseconds, then per drained bucket (capacity, refill_per_sec).
-- A cooldown is a key whose TTL is the time left; it is extended, never shortened.

local MARGIN = 10
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local ncd, ms = tonumber(ARGV[1]), tonumber(ARGV[2])

for k = 1, ncd do
  if ms > 0 and redis.call('PTTL', KEYS[k]) < ms then redis.call('SET', KEYS[k], '1', 'PX', ms) end
end
for k = ncd + 1, #KEYS do
  local a = 2 * (k - ncd) + 1
  local cap, rate = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local h = redis.call('HMGET', KEYS[k], 'l', 't')
  local level = cap
  if h[1] then level = math.min(cap, tonumber(h[1]) + math.max(0, now - tonumber(h[2])) * rate) end
  level = math.min(level, 0)
  redis.call('HSET', KEYS[k], 'l', string.format('%.17g', level), 't', string.format('%.17g', now))
  redis.call('PEXPIRE', KEYS[k], math.ceil((2 * (cap - level) / rate + MARGIN) * 1000))
end
return ncd
