-- Charge a request admitted without any limit (nothing was reserved for it): its cost
-- to every window of every scope, its tokens to the minute.
-- KEYS: each scope's key prefix. ARGV: now override, request id, cost, tokens.
local now = now_ms()
local id, cost, tok = ARGV[2], ARGV[3], ARGV[4]
for i = 1, #KEYS do
  local S = KEYS[i]
  for _, period in ipairs(PERIODS) do
    local k = spend_key(S, period, now)
    if cost ~= '0' then redis.call('INCRBY', k, cost) end
    if KEEP[period] and redis.call('EXISTS', k) == 1 then redis.call('EXPIRE', k, KEEP[period]) end
  end
  if tok ~= '0' then
    redis.call('ZADD', S .. ':chg', now, tok .. ':' .. id)
    redis.call('PEXPIRE', S .. ':chg', 120000)
  end
end
return 1
