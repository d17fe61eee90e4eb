-- levels_v2: the current level of each bucket (read only). Redis TIME is the only clock.
-- KEYS: bucket keys. ARGV: per key (capacity, refill_per_sec). Returns levels as strings.
-- A bucket is a string "<level> <TIME of that level>" with a TTL (admit_v7 describes the layout).

local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local stored = #KEYS > 0 and redis.call('MGET', unpack(KEYS)) or {}
local levels = {}
for k = 1, #KEYS do
  local cap, rate = tonumber(ARGV[2 * k - 1]), tonumber(ARGV[2 * k])
  local level = cap
  if stored[k] then
    local l, t = string.match(stored[k], '^(%S+) (%S+)$')
    level = math.min(cap, tonumber(l) + math.max(0, now - tonumber(t)) * rate)
  end
  levels[k] = string.format('%.17g', level)
end
return levels
