-- cooldowns_v1: milliseconds left on each cooldown key (0 = none), in KEYS order.
local left = {}
for k = 1, #KEYS do
  local ms = redis.call('PTTL', KEYS[k])
  left[k] = ms > 0 and ms or 0
end
return left
