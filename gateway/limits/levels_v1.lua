-- levels_v1: the current level of each bucket (read only). Redis TIME is the only clock.
-- KEYS: bucket keys. ARGV: per key (capacity, refill_per_sec). Returns levels as strings.

local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local levels = {}
for k = 1, #KEYS do
  local cap, rate = tonumber(ARGV[2 * k - 1]), tonumber(ARGV[2 * k])
  local h = redis.call('HMGET', KEYS[k], 'l', 't')
  local level = cap
  if h[1] then level = math.min(cap, tonumber(h[1]) + math.max(0, now - tonumber(h[2])) * rate) end
  levels[k] = string.format('%.17g', level)
end
return levels
