-- health_sync_v1: add one replica's health deltas and return the fleet's merged view. Redis TIME is the only clock.
-- KEYS[1]: hash deployment -> JSON state; KEYS[2]: zset replica -> last sync; KEYS[3]: hash replica -> JSON in-flight.
-- ARGV: replica, failure_threshold, error_rate_threshold, min_requests, window_s, open_s, alpha, replica_ttl_s,
--       retention_s, deltas JSON {dep: {s, f, t, r, e, ls, ln, ts, tn}} (see health_store.encode), in-flight JSON {dep: n}.
-- State per deployment: st 'closed'|'open' (half-open = open and past u), u (open until), wi (window index),
-- ca/cf and pa/pf (attempts/failures of the current and previous window), c (consecutive failures),
-- lat/ttft (EWMA, ms), seen (last delta). Returns JSON {replicas, deps: {dep: view}}.

local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local replica = ARGV[1]
local threshold, max_rate, min_requests = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local window, open_s, alpha = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local replica_ttl, retention = tonumber(ARGV[8]), tonumber(ARGV[9])
local deltas, inflight = cjson.decode(ARGV[10]), cjson.decode(ARGV[11])

local function rotate(d)
  local i = math.floor(now / window)
  if i ~= d.wi then
    if i == d.wi + 1 then d.pa, d.pf = d.ca, d.cf else d.pa, d.pf = 0, 0 end
    d.wi, d.ca, d.cf = i, 0, 0
  end
end

-- The sliding-window estimate: all of this window plus the overlapping part of the previous one.
local function counts(d)
  rotate(d)
  local weight = 1 - (now / window - d.wi)
  return d.ca + d.pa * weight, d.cf + d.pf * weight
end

local function circuit(d)
  if d.st ~= 'open' then return 'closed' end
  if now >= d.u then return 'half_open' end
  return 'open'
end

-- n samples with this mean, as if applied one by one (exact when they are equal).
local function ewma(old, sum, n)
  if n <= 0 then return old end
  if old == nil then return sum / n end
  local keep = (1 - alpha) ^ n
  return old * keep + sum / n * (1 - keep)
end

local function apply(d, x)
  local state = circuit(d)
  if x.e == 'open' and state ~= 'open' then
    d.st, d.u = 'open', now + open_s -- opened, or a probe failed: the earliest opening of a period wins
  elseif x.e == 'close' and state == 'half_open' then
    d.st, d.c, d.ca, d.cf, d.pa, d.pf = 'closed', 0, 0, 0, 0, 0 -- a probe succeeded: forget the failures
  end
  rotate(d)
  d.ca, d.cf = d.ca + x.s + x.f, d.cf + x.f
  if x.r then d.c = x.t else d.c = d.c + x.t end
  d.lat, d.ttft = ewma(d.lat, x.ls, x.ln), ewma(d.ttft, x.ts, x.tn)
  if circuit(d) == 'closed' then
    local attempts, failures = counts(d)
    if d.c >= threshold or (attempts >= min_requests and failures > max_rate * attempts) then
      d.st, d.u = 'open', now + open_s
    end
  end
  d.seen = now
end

local states = {}
local rows = redis.call('HGETALL', KEYS[1])
for k = 1, #rows, 2 do states[rows[k]] = cjson.decode(rows[k + 1]) end
for dep, x in pairs(deltas) do
  local d = states[dep] or { st = 'closed', u = 0, wi = math.floor(now / window), ca = 0, cf = 0, pa = 0, pf = 0, c = 0 }
  if x.s + x.f > 0 or x.e ~= '' then -- in-flight alone is not news about the deployment
    apply(d, x)
    states[dep] = d
    redis.call('HSET', KEYS[1], dep, cjson.encode(d))
  end
end

-- In-flight: each replica's latest counts; a replica that stopped syncing drops out after replica_ttl.
redis.call('ZADD', KEYS[2], string.format('%.17g', now), replica)
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', string.format('%.17g', now - replica_ttl))) do
  redis.call('ZREM', KEYS[2], gone)
  redis.call('HDEL', KEYS[3], gone)
end
if next(inflight) == nil then redis.call('HDEL', KEYS[3], replica) else redis.call('HSET', KEYS[3], replica, ARGV[11]) end
local busy = {}
rows = redis.call('HGETALL', KEYS[3])
for k = 2, #rows, 2 do
  for dep, n in pairs(cjson.decode(rows[k])) do busy[dep] = (busy[dep] or 0) + n end
end

local view = {}
for dep, d in pairs(states) do
  if now - d.seen > retention then
    redis.call('HDEL', KEYS[1], dep)
  else
    local state = circuit(d)
    local attempts, failures = counts(d)
    view[dep] = {
      circuit = state, retry_in = state == 'open' and d.u - now or 0, attempts = attempts, failures = failures,
      consecutive = d.c, inflight = busy[dep] or 0, lat = d.lat, ttft = d.ttft,
    }
  end
end
for dep, n in pairs(busy) do
  if view[dep] == nil then
    view[dep] = { circuit = 'closed', retry_in = 0, attempts = 0, failures = 0, consecutive = 0, inflight = n }
  end
end

redis.call('PEXPIRE', KEYS[1], math.ceil(retention * 1000))
redis.call('PEXPIRE', KEYS[2], math.ceil(replica_ttl * 1000))
redis.call('PEXPIRE', KEYS[3], math.ceil(replica_ttl * 1000))
return cjson.encode({ replicas = redis.call('ZCARD', KEYS[2]), deps = view })
