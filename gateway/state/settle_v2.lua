-- settle_v2: reconcile buckets with what a request actually used. Redis TIME is the only clock.
-- KEYS: bucket keys. ARGV: per key (capacity, refill_per_sec, delta); delta > 0 gives back, < 0 charges.
-- A bucket is a string "<level> <TIME of that level>" with a TTL (admit_v4 describes the layout).
-- A bucket that ends up full is deleted: a missing bucket reads as full.

local MARGIN = 10
local MAX_TTL_MS = 3600000 -- decide.MAX_TTL_SECONDS: a TTL Redis accepts, whatever the level
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local stamp = string.format('%.17g', now)
local stored = #KEYS > 0 and redis.call('MGET', unpack(KEYS)) or {}

for k = 1, #KEYS do
  local cap, rate, delta = tonumber(ARGV[3 * k - 2]), tonumber(ARGV[3 * k - 1]), tonumber(ARGV[3 * k])
  local level = cap
  if stored[k] then
    local l, t = string.match(stored[k], '^(%S+) (%S+)$')
    level = math.min(cap, tonumber(l) + math.max(0, now - tonumber(t)) * rate)
  end
  level = math.min(cap, level + delta)
  if level >= cap then
    redis.call('DEL', KEYS[k])
  else
    local ttl = math.min(math.ceil((2 * (cap - level) / rate + MARGIN) * 1000), MAX_TTL_MS)
    redis.call('SET', KEYS[k], string.format('%.17g', level) .. ' ' .. stamp, 'PX', ttl)
  end
end
return #KEYS
