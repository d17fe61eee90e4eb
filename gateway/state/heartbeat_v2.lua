-- heartbeat_v2: record that this replica is alive and count the live ones. Redis TIME is the only clock.
-- v2 (against v1): also returns that TIME, so a replica knows how far its own clock is from Redis's (an
-- admission carries the Redis time after which it must not run: admit_v7).
-- KEYS[1]: sorted set of replica id -> last seen (seconds). ARGV: replica id, live window (seconds).
-- Returns: {live replicas, TIME seconds, TIME microseconds}.

local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local window = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], string.format('%.17g', now), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.17g', now - window))
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 2000))
return {redis.call('ZCARD', KEYS[1]), tonumber(clock[1]), tonumber(clock[2])}
