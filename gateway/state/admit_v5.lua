-- admit_v5: choose a candidate with room and charge it, the caller's quotas and the budgets the request
-- touches, all or nothing. The same algorithm as gateway/limits/decide.py; Redis TIME is the only clock.
-- v5 (against v4): budgets. A budget is a spend counter per calendar window, "<USD spent> <alert level>"
-- with an absolute expiry; every budget must have room for the chosen candidate's maximum cost (the
-- cheapest candidate's when none has capacity), else nothing is charged (decide.py: budget_room,
-- budget_take); the first time a budget's spend reaches an alert share (decide.ALERTS) in its window,
-- the level is stored and reported, so one replica of the fleet reports it.
--
-- KEYS: the distinct bucket keys (nb of them), then the distinct cooldown keys, then the budget keys
--       (nbud of them, last).
-- ARGV[1]: one JSON array (packing ~40 separate arguments cost the gateway more CPU than the rest of
-- the call; cjson decodes it in a tenth of the time a Lua split takes) of: strategy ("first" | "most_headroom"), nb, nb x (capacity, refill_per_sec),
--       nq, nq x (bucket index, cost),
--       nc, nc x (deployment cooldown index, account cooldown index, usd, n, n x (bucket index, cost)),
--       nbud, nbud x (cap, expiry as Unix milliseconds), alert shares count, the alert shares,
--       the Redis TIME after which the call is stale and must do nothing (0: never; it then returns {-2}).
--       Indexes are 1-based: bucket indexes into the bucket keys, cooldown indexes into the cooldown keys.
-- Returns: {chosen (0-based, -1 = none), retry_after, blocked_by_quota (0/1),
--           {candidate index (0-based), skip code (-1 = cooldown, k = its k-th bucket is full)}...,
--           {quota levels after the decision}, over budget (1-based, 0 = none),
--           {each budget's counter as it was read (false: none yet)},
--           {budget index (1-based), alert level before, alert level newly reached}...}.
--           The caller computes what each budget took, and its spend after, from what was read: the same
--           arithmetic (decide.budget_take), in the same doubles, and no formatting here.
--           Floats are returned as strings (Redis truncates numbers).
-- Storage (v3 and later; every script agrees): a bucket is a string "<level> <TIME of that level>"
-- with a TTL, a cooldown a string "<TIME it ends>" with a TTL, so one MGET reads every key the call
-- touches and one SET ... PX writes each charged bucket (v2 made three calls per bucket).
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

local nbud = tonumber(arg())
local bcap, bexp, spent, level_of = {}, {}, {}, {}
local first_budget = #KEYS - nbud
for j = 1, nbud do
  bcap[j] = tonumber(arg())
  bexp[j] = tonumber(arg())
  local v = stored[first_budget + j]
  if v then
    local s, l = string.match(v, '^(%S+) (%S+)$')
    spent[j], level_of[j] = tonumber(s), tonumber(l)
  else
    spent[j], level_of[j] = 0, 0
  end
end
local shares = {}
for a = 1, tonumber(arg()) do shares[a] = tonumber(arg()) end
local function alert_level(j)
  local n = 0
  for _, share in ipairs(shares) do
    if spent[j] >= share * bcap[j] then n = n + 1 end
  end
  return n
end

local over = 0
if nbud > 0 and nc > 0 then
  local cost = chosen >= 0 and usds[chosen] or math.huge
  if chosen < 0 then
    for c = 0, nc - 1 do cost = math.min(cost, usds[c]) end
  end
  for j = 1, nbud do
    if over == 0 and not (cost <= 0 or spent[j] < bcap[j]) then over = j end
  end
end

local stamp = string.format('%.17g', now)
local function charge(i, cost)
  level[i] = level[i] - need(i, cost)
  local ttl = math.min(math.ceil((2 * math.max(0, cap[i] - level[i]) / rate[i] + MARGIN) * 1000), MAX_TTL_MS)
  redis.call('SET', KEYS[i], string.format('%.17g', level[i]) .. ' ' .. stamp, 'PX', ttl)
end

local retry, blocked = 0, 0
local took = {}
if over > 0 then
  chosen = -1
elseif not quota_ok then
  chosen, blocked, retry = -1, 1, math.max(quota_wait, candidate_wait)
elseif chosen < 0 then
  retry = candidate_wait
else
  for _, b in ipairs(chosen_buckets) do charge(b[1], b[2]) end
  for _, q in ipairs(quota) do charge(q[1], q[2]) end
  local cost = usds[chosen]
  for j = 1, nbud do
    took[j] = cost <= 0 and 0 or math.min(cost, bcap[j] - spent[j])
    spent[j] = spent[j] + took[j]
  end
end

local alerts = {}
local read = {}
for j = 1, nbud do
  local reached = alert_level(j)
  local raised = reached > level_of[j]
  if raised then
    alerts[#alerts + 1] = {j, level_of[j], reached}
    level_of[j] = reached
  end
  if raised or (took[j] or 0) > 0 then
    redis.call('SET', KEYS[first_budget + j], string.format('%.17g', spent[j]) .. ' ' .. level_of[j], 'PXAT', string.format('%d', bexp[j]))
  end
  read[j] = stored[first_budget + j] or false
end

local levels = {}
for q, b in ipairs(quota) do levels[q] = string.format('%.17g', level[b[1]]) end
return {chosen, string.format('%.17g', retry), blocked, skips, levels, over, read, alerts}
