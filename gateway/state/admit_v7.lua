-- admit_v7: choose a candidate with room and charge it, the caller's quotas and the budgets the request
-- touches, all or nothing. The same algorithm as gateway/limits/decide.py; Redis TIME is the only clock.
-- v7 (against v6): the answer also carries the level each of the chosen candidate's buckets was left at, so a
-- replica that loses Redis starts its local shares from what it last learned (gateway/limits/resilient.py).
-- v6 (against v5): each bucket and cooldown is named where it is used, and the script finds the ones named
-- twice (an account's buckets shared by its deployments), so the caller encodes a request in one pass.
-- v5 (against v4): budgets. A budget is a spend counter per calendar window, its USD spent and its alert
-- level packed together (below), expiring a day after its window; every budget must have room for the
-- chosen candidate's maximum cost (the cheapest candidate's when none has capacity), else nothing is
-- charged (decide.py: budget_room, budget_take); the first time a budget's spend reaches an alert share
-- (decide.ALERTS) in its window, the level is stored and reported, so one replica of the fleet reports it.
--
-- KEYS: each quota's bucket key; then per candidate its deployment cooldown key, its account cooldown key
--       and its bucket keys; then the budget keys (nbud of them, last). A key may appear more than once.
-- ARGV[1]: one JSON array (packing ~40 separate arguments cost the gateway more CPU than the rest of
-- the call; cjson decodes it in a tenth of the time a Lua split takes) of: strategy ("first" | "most_headroom"),
--       nq, nq x (capacity, refill_per_sec, cost),
--       nc, nc x (usd, n, n x (capacity, refill_per_sec, cost)),
--       nbud, nbud x (cap, expiry as Unix milliseconds in a decimal string), alert shares count, the alert
--       shares (ascending),
--       the Redis TIME after which the call is stale and must do nothing (0: never; it then returns {-2}).
-- Returns: {chosen (0-based, -1 = none), retry_after, blocked_by_quota (0/1),
--           {candidate index (0-based), skip code (-1 = cooldown, k = its k-th bucket is full)}...,
--           {quota levels after the decision}, over budget (1-based, 0 = none),
--           each budget's spend after the decision then what it took (decide.budget_take; 0 unless
--           admitted), as 2 x nbud little-endian doubles in one string (struct.pack: exact, no formatting),
--           {budget index (1-based), alert level before, alert level newly reached}...,
--           the chosen candidate's bucket levels after the decision, little-endian doubles in one string
--           ('' when nothing was admitted)}.
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
local tonumber, min, max, find, sub, format = tonumber, math.min, math.max, string.find, string.sub, string.format
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000

local args = cjson.decode(ARGV[1])
-- An admission whose caller has given up (Redis stalled with it queued) must not charge anything: the
-- caller reserved elsewhere meanwhile, and a budget would keep a reservation nobody settles.
local not_after = args[#args]
if not_after > 0 and now > not_after then return {-2} end

local stored = #KEYS > 0 and redis.call('MGET', unpack(KEYS)) or {}
-- Buckets by slot, each key given one slot however often it is named. The arguments are read in place
-- (args[pos + k]) rather than through a reading function, and a bucket is parsed with a plain find: a Lua
-- call per argument and a pattern match per bucket were about a fifth of the script's time.
local slot_of, key_of, cap, rate, level = {}, {}, {}, {}, {}
local function bucket(k, c, r) -- the slot of the bucket at KEYS[k], read the first time
  local key = KEYS[k]
  local s = slot_of[key]
  if s then return s end
  s = #cap + 1
  slot_of[key], key_of[s], cap[s], rate[s] = s, key, c, r
  local v = stored[k]
  if v then
    local space = find(v, ' ', 1, true)
    local l = tonumber(sub(v, 1, space - 1)) + max(0, now - tonumber(sub(v, space + 1))) * r
    level[s] = l < c and l or c
  else
    level[s] = c
  end
  return s
end
local function cooldown(k)
  local ends = stored[k]
  return ends and max(0, tonumber(ends) - now) or 0
end

local first = args[1] == 'first' -- the strategy: 'first' or 'most_headroom'
local k, pos = 0, 2 -- the last key and argument read

-- quota q: its bucket slot and cost
local nq = args[pos]
local quota_slot, quota_cost = {}, {}
local quota_ok, quota_wait = true, 0
for q = 1, nq do
  k = k + 1
  local i, cost = bucket(k, args[pos + 1], args[pos + 2]), args[pos + 3]
  pos = pos + 3
  quota_slot[q], quota_cost[q] = i, cost
  local need = min(cost, cap[i])
  if level[i] < need then
    quota_ok = false
    quota_wait = max(quota_wait, (need - level[i]) / rate[i])
  end
end

local nc = args[pos + 1]
pos = pos + 1
local chosen, chosen_slots, chosen_costs, best = -1, nil, nil, -math.huge
local candidate_wait = math.huge
local skips = {}
local usds = {}
for c = 0, nc - 1 do
  local usd, n = args[pos + 1], args[pos + 2]
  pos = pos + 2
  local cool = max(cooldown(k + 1), cooldown(k + 2))
  k = k + 2
  local slots, costs = {}, {}
  for b = 1, n do
    k = k + 1
    slots[b], costs[b] = bucket(k, args[pos + 1], args[pos + 2]), args[pos + 3]
    pos = pos + 3
  end
  usds[c] = usd
  if chosen < 0 or not first then
    local full = 0
    for b = 1, n do
      local i = slots[b]
      if level[i] < min(costs[b], cap[i]) then full = b break end
    end
    if cool > 0 or full > 0 then
      skips[#skips + 1] = {c, cool > 0 and -1 or full}
      local w = cool
      for b = 1, n do
        local i = slots[b]
        w = max(w, (min(costs[b], cap[i]) - level[i]) / rate[i])
      end
      candidate_wait = min(candidate_wait, w)
    else
      local headroom = math.huge
      for b = 1, n do
        local i = slots[b]
        headroom = min(headroom, (level[i] - costs[b]) / cap[i])
      end
      if chosen < 0 or (not first and headroom > best) then
        chosen, chosen_slots, chosen_costs, best = c, slots, costs, headroom
      end
    end
  end
end
if chosen >= 0 or nc == 0 then candidate_wait = 0 end

-- A budget without room refuses (over: its 1-based index); it is measured against the chosen candidate's
-- maximum cost, or the cheapest candidate's when none has capacity (free requests pass a spent budget).
local nbud = args[pos + 1]
local budgets_at, first_budget = pos + 1, #KEYS - nbud -- budget j: cap args[budgets_at + 2j - 1], expiry + 2j
pos = budgets_at + 2 * nbud
local needed = 0
if nbud > 0 and nc > 0 then
  needed = chosen >= 0 and usds[chosen] or math.huge
  if chosen < 0 then
    for c = 0, nc - 1 do needed = min(needed, usds[c]) end
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
for a = 1, args[pos + 1] do shares[a] = args[pos + 1 + a] end
local function alert_level(usd, limit)
  local n = 0
  for _, share in ipairs(shares) do
    if usd >= share * limit then n = n + 1 end
  end
  return n
end

local stamp = ' ' .. format('%.17g', now)
local function charge(i, cost)
  local c = cap[i]
  local left = level[i] - (cost < c and cost or c)
  level[i] = left
  local ttl = math.ceil((2 * max(0, c - left) / rate[i] + MARGIN) * 1000)
  redis.call('SET', key_of[i], format('%.17g', left) .. stamp, 'PX', ttl < MAX_TTL_MS and ttl or MAX_TTL_MS)
end

local retry, blocked, cost = 0, 0, 0
if over > 0 then
  chosen = -1
elseif not quota_ok then
  chosen, blocked, retry = -1, 1, max(quota_wait, candidate_wait)
elseif chosen < 0 then
  retry = candidate_wait
else
  for b, i in ipairs(chosen_slots) do charge(i, chosen_costs[b]) end
  for q = 1, nq do charge(quota_slot[q], quota_cost[q]) end
  cost = usds[chosen]
end

-- Each budget takes the admitted cost (or the room left), and reports an alert level newly reached.
local alerts, amounts = {}, {}
for j = 1, nbud do
  local limit, usd, before = args[budgets_at + 2 * j - 1], spent[j], level_of[j]
  local took = cost > 0 and min(cost, limit - usd) or 0
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
for q = 1, nq do levels[q] = format('%.17g', level[quota_slot[q]]) end
local left = ''
if chosen >= 0 and #chosen_slots > 0 then -- admitted (every refusal above set chosen to -1)
  local each = {}
  for b, i in ipairs(chosen_slots) do each[b] = level[i] end
  left = struct.pack('<' .. string.rep('d', #each), unpack(each))
end
return {chosen, format('%.17g', retry), blocked, skips, levels, over, amounts, alerts, left}
