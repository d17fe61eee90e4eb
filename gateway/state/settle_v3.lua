-- settle_v3: reconcile buckets and budgets with what requests actually used. Redis TIME is the only clock.
-- v3 (against v2): budgets, and the arguments packed as one JSON array (as admit_v7 takes them).
-- KEYS: bucket keys (nb of them), then budget keys, then the hash of batches applied (replica -> last seq).
-- ARGV[1]: JSON array: replica id, batch seq (0: none), nb, nb x (capacity, refill_per_sec, delta),
--          nbud, nbud x (delta USD, expiry as Unix ms).
-- A batch that carries a seq is applied once: a replica resends one whose call failed, and the failed call
-- may still have run (Redis paused, then resumed with it in its buffer), so a seq at or below the replica's
-- last applied one is skipped. Budget spend is money: it must be counted once, neither lost nor doubled.
-- A bucket delta > 0 gives back, < 0 charges; a bucket that ends up full is deleted (a missing bucket reads
-- as full). A budget delta is added to its spend, which never goes below 0; its alert level is kept, so a
-- share already reported is not reported again in the same window (admit_v7 reports them, and describes the
-- counter: struct.pack('<dB', USD spent, alert level)).

local MARGIN = 10
local MAX_TTL_MS = 3600000 -- decide.MAX_TTL_SECONDS: a TTL Redis accepts, whatever the level
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local stamp = string.format('%.17g', now)
local stored = #KEYS > 1 and redis.call('MGET', unpack(KEYS, 1, #KEYS - 1)) or {}

local args = cjson.decode(ARGV[1])
local pos = 0
local function arg()
  pos = pos + 1
  return args[pos]
end

local replica, seq = arg(), tonumber(arg())
if seq > 0 then
  local applied = KEYS[#KEYS]
  if seq <= tonumber(redis.call('HGET', applied, replica) or '0') then return 0 end
  redis.call('HSET', applied, replica, seq)
  redis.call('PEXPIRE', applied, 86400000)
end

local nb = tonumber(arg())
for k = 1, nb do
  local cap, rate, delta = tonumber(arg()), tonumber(arg()), tonumber(arg())
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

local nbud = tonumber(arg())
for j = 1, nbud do
  local delta, expiry = tonumber(arg()), tonumber(arg())
  local spent, reached = 0, 0
  local v = stored[nb + j]
  if v then spent, reached = struct.unpack('<dB', v) end
  spent = math.max(0, spent + delta)
  redis.call('SET', KEYS[nb + j], struct.pack('<dB', spent, reached), 'PXAT', string.format('%d', expiry))
end
return #KEYS - 1
