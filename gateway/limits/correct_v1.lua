-- correct_v1: the provider reports fewer remaining than we think: lower the level, never raise it.
-- KEYS[1]: the bucket. ARGV: capacity, refill_per_sec, remaining. Redis TIME is the only clock.

local MARGIN = 10
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local cap, rate, remaining = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

local h = redis.call('HMGET', KEYS[1], 'l', 't')
local level = cap
if h[1] then level = math.min(cap, tonumber(h[1]) + math.max(0, now - tonumber(h[2])) * rate) end
if remaining >= level then return 0 end
redis.call('HSET', KEYS[1], 'l', string.format('%.17g', remaining), 't', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((2 * (cap - remaining) / rate + MARGIN) * 1000))
return 1
