-- ledger_v1: add finished requests' spend to the ledger, one sorted set per window and table (member:
-- a key, tier, deployment, route or end user; score: USD, or requests in the ":n" tables), each kept
-- until an absolute expiry (its window's end plus the retention).
-- KEYS: the sorted sets. ARGV[1]: one JSON array: nk, nk x (expiry as Unix milliseconds),
--       then (set index (1-based), member, amount) repeated.
-- Scores are doubles: exact to a millionth of a USD below a billion USD.

local args = cjson.decode(ARGV[1])
local nk = tonumber(args[1])
local n = 0
for i = nk + 2, #args, 3 do
  local key = KEYS[tonumber(args[i])]
  redis.call('ZINCRBY', key, string.format('%.17g', args[i + 2]), args[i + 1])
  n = n + 1
end
for k = 1, nk do -- after the increments: an expiry needs the set to exist
  redis.call('PEXPIREAT', KEYS[k], string.format('%d', args[1 + k]))
end
return n
