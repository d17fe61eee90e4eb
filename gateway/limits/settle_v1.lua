-- settle_v1: reconcile buckets with what a request actually used. Redis TIME is the only clock.
-- KEYS: bucket keys. ARGV: per key (capacity, refill_per_sec, delta); delta > 0 gives back, < 0 charges.
-- A bucket that ends up full is deleted: a missing bucket reads as full.

local MARGIN = 10
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000

for k = 1, #KEYS do
  local cap, rate, delta = tonumber(ARGV[3 * k - 2]), tonumber(ARGV[3 * k - 1]), tonumber(ARGV[3 * k])
  local h = redis.call('HMGET', KEYS[k], 'l', 't')
  local level = cap
  if h[1] then level = math.min(cap, tonumber(h[1]) + math.max(0, now - tonumber(h[2])) * rate) end
  level = math.min(cap, level + delta)
  if level >= cap then
    redis.call('DEL', KEYS[k])
  else
    redis.call('HSET', KEYS[k], 'l', string.format('%.17g', level), 't', string.format('%.17g', now))
    redis.call('PEXPIRE', KEYS[k], math.ceil((2 * (cap - level) / rate + MARGIN) * 1000))
  end
end
return #KEYS
