-- admit_v5: choose a candidate with room and charge it, the caller's quotas and the budgets the request
-- touches, all or nothing. The same algorithm as gateway/limits/decide.py; Redis TIME is the only clock.
-- v5 (against v4): budgets. A budget is a spend counter per calendar window, its USD spent and its alert
-- level packed together (below), expiring a day after its window; every budget must have room for the
-- chosen candidate's maximum cost (the cheapest candidate's when none has capacity), else nothing is
-- charged (decide.py: budget_room, budget_take); the first time a budget's spend reaches an alert share
-- (decide.ALERTS) in its window, the level is stored and reported, so one replica of the fleet reports it.
--
-- KEYS: the distinct bucket keys (nb of them), then the distinct cooldown keys, then the budget keys
--       (nbud of them, last).
-- ARGV[1]: one JSON array (packing ~40 separate arguments cost the gateway more CPU than the rest of
-- the call; cjson decodes it in a tenth of the time a Lua split takes) of: strategy ("first" | "most_headroom"), nb, nb x (capacity, refill_per_sec),
--       nq, nq x (bucket index, cost),
--       nc, nc x (deployment cooldown index, account cooldown index, usd, n, n x (bucket index, cost)),
--       nbud, nbud x (cap, expiry as Unix milliseconds in a decimal string), alert shares count, the alert
--       shares (ascending),
--       the Redis TIME after which the call is stale and must do nothing (0: never; it then returns {-2}).
--       Indexes are 1-based: bucket indexes into the bucket keys, cooldown indexes into the cooldown keys.
-- Returns: {chosen (0-based, -1 = none), retry_after, blocked_by_quota (0/1),
--           {candidate index (0-based), skip code (-1 = cooldown, k = its k-th bucket is full)}...,
--           {quota levels after the decision}, over budget (1-based, 0 = none),
--           each budget's spend after the decision then what it took (decide.budget_take; 0 unless
--           admitted), as 2 x nbud little-endian doubles in one string (struct.pack: exact, no formatting),
--           {budget index (1-based), alert level before, alert level newly reached}...}.
--           Other floats are returned as strings (Redis truncates numbers).
-- Storage (v3 and later; every script agrees): a bucket is a string "<level> <TIME of that level>"
-- with a TTL, a cooldown a string "<TIME it ends>" with a TTL, so one MGET reads every key the call
-- touches and one SET ... PX writes each charged bucket (v2 made three calls per bucket). A budget is
-- struct.pack('<dB', USD spent, alert level): 9 bytes, exact, read and written without a decimal
-- conversion (printing and parsing 17 digits cost more than the SET), given its expiry when made and
-- rewritten with KEEPTTL (settle_v3 writes it the same way, with the expiry).
-- A missing bucket is full; a missing cooldown is over; a missing budget has spent nothing.

local MARGIN = 10 -- seconds past twice the refill time before an idle bucket expires (decide.py agrees)
local MAX_TTL_MS = 3600000 -- decide.MAX_TTL_SECONDS
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000

local args = cjson.decode(ARGV[1])
-- An admission whose caller has given up (Redis stalled with it queued) must not charge anything: the
-- caller reserved elsewhere meanwhile, and a budget would keep a reservation nobody settles.
local not_after = tonumber(args[#args])
if not_after > 0 and now > not_after then return {-2} end
local pos = 0
local function arg()
  pos = pos + 1
  return args[pos]
end

local stored = #KEYS > 0 and redis.call('MGET', unpack(KEYS)) or {}
local strategy = arg()
local nb = tonumber(arg())
local cap, rate, level = {}, {}, {}
for i = 1, nb do
  cap[i] = tonumber(arg())
  rate[i] = tonumber(arg())
  local v = stored[i]
  if v then
    local l, t = string.match(v, '^(%S+) (%S+)$')
    level[i] = math.min(cap[i], tonumber(l) + math.max(0, now - tonumber(t)) * rate[i])
  else
    level[i] = cap[i]
  end
end

local function need(i, cost) return math.min(cost, cap[i]) end
local function wait(i, cost) return math.max(0, (need(i, cost) - level[i]) / rate[i]) end
local function cooldown(j)
  local ends = stored[nb + j]
  return ends and math.max(0, tonumber(ends) - now) or 0
end

local quota = {}
local quota_ok, quota_wait = true, 0
for q = 1, tonumber(arg()) do
  local i, cost = tonumber(arg()), tonumber(arg())
  quota[q] = {i, cost}
  if level[i] < need(i, cost) then quota_ok = false end
  quota_wait = math.max(quota_wait, wait(i, cost))
end

local nc = tonumber(arg())
local chosen, chosen_buckets, best = -1, nil, -math.huge
local candidate_wait = math.huge
local skips = {}
local usds = {}
for c = 0, nc - 1 do
  local dep, acct, usd, n = tonumber(arg()), tonumber(arg()), tonumber(arg()), tonumber(arg())
  usds[c] = usd
  local buckets = {}
  for k = 1, n do buckets[k] = {tonumber(arg()), tonumber(arg())} end
  if chosen < 0 or strategy ~= 'first' then
    local cool = math.max(cooldown(dep), cooldown(acct))
    local full = 0
    for k = 1, n do
      if full == 0 and level[buckets[k][1]] < need(buckets[k][1], buckets[k][2]) then full = k end
    end
    if cool > 0 or full > 0 then
      skips[#skips + 1] = {c, cool > 0 and -1 or full}
      local w = cool
      for k = 1, n do w = math.max(w, wait(buckets[k][1], buckets[k][2])) end
      candidate_wait = math.min(candidate_wait, w)
    else
      local headroom = math.huge
      for k = 1, n do
        local i = buckets[k][1]
        headroom = math.min(headroom, (level[i] - buckets[k][2]) / cap[i])
      end
      if chosen < 0 or (strategy ~= 'first' and headroom > best) then
        chosen, chosen_buckets, best = c, buckets, headroom
      end
    end
  end
end
if chosen >= 0 or nc == 0 then candidate_wait = 0 end

-- A budget without room refuses (over: its 1-based index); it is measured against the chosen candidate's
-- maximum cost, or the cheapest candidate's when none has capacity (free requests pass a spent budget).
local nbud = arg()
local budgets_at, first_budget = pos, #KEYS - nbud -- budget j: cap args[budgets_at + 2j - 1], expiry + 2j
pos = pos + 2 * nbud
local needed = 0
if nbud > 0 and nc > 0 then
  needed = chosen >= 0 and usds[chosen] or math.huge
  if chosen < 0 then
    for c = 0, nc - 1 do needed = math.min(needed, usds[c]) end
  end
end
local spent, level_of, over = {}, {}, 0
for j = 1, nbud do
  local v = stored[first_budget + j]
  if v then
    spent[j], level_of[j] = struct.unpack('<dB', v)
  else
    spent[j], level_of[j] = 0, 0
  end
  if over == 0 and needed > 0 and spent[j] >= args[budgets_at + 2 * j - 1] then over = j end
end
local shares = {}
for a = 1, arg() do shares[a] = arg() end
local function alert_level(usd, limit)
  local n = 0
  for _, share in ipairs(shares) do
    if usd >= share * limit then n = n + 1 end
  end
  return n
end

local stamp = string.format('%.17g', now)
local function charge(i, cost)
  level[i] = level[i] - need(i, cost)
  local ttl = math.min(math.ceil((2 * math.max(0, cap[i] - level[i]) / rate[i] + MARGIN) * 1000), MAX_TTL_MS)
  redis.call('SET', KEYS[i], string.format('%.17g', level[i]) .. ' ' .. stamp, 'PX', ttl)
end

local retry, blocked, cost = 0, 0, 0
if over > 0 then
  chosen = -1
elseif not quota_ok then
  chosen, blocked, retry = -1, 1, math.max(quota_wait, candidate_wait)
elseif chosen < 0 then
  retry = candidate_wait
else
  for _, b in ipairs(chosen_buckets) do charge(b[1], b[2]) end
  for _, q in ipairs(quota) do charge(q[1], q[2]) end
  cost = usds[chosen]
end

-- Each budget takes the admitted cost (or the room left), and reports an alert level newly reached.
local alerts, amounts = {}, {}
for j = 1, nbud do
  local limit, usd, before = args[budgets_at + 2 * j - 1], spent[j], level_of[j]
  local took = cost > 0 and math.min(cost, limit - usd) or 0
  usd = usd + took
  amounts[j], amounts[nbud + j] = usd, took
  local next_share = shares[before + 1] -- the shares ascend: a new level means the next one is reached
  local reached = (next_share and usd >= next_share * limit) and alert_level(usd, limit) or before
  if reached > before then alerts[#alerts + 1] = {j, before, reached} end
  if reached > before or took > 0 then
    -- a counter keeps the expiry of its window, set when it is made
    local packed = struct.pack('<dB', usd, reached)
    if stored[first_budget + j] then
      redis.call('SET', KEYS[first_budget + j], packed, 'KEEPTTL')
    else
      redis.call('SET', KEYS[first_budget + j], packed, 'PXAT', args[budgets_at + 2 * j])
    end
  end
end
amounts = nbud > 0 and struct.pack('<' .. string.rep('d', 2 * nbud), unpack(amounts)) or ''

local levels = {}
for q, b in ipairs(quota) do levels[q] = string.format('%.17g', level[b[1]]) end
return {chosen, string.format('%.17g', retry), blocked, skips, levels, over, amounts, alerts}
