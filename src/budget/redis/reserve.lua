-- Set an admitted request's reservation to a new cost and token count; growth must
-- fit every budget it holds in, else nothing changes.
-- KEYS[1]: the request's hash. ARGV: now override, cost, tokens.
-- Reply: {'ok', now} or {'budget', now, scope index, spent, reserved, old cost}.
local now = now_ms()
local R = KEYS[1]
local cost, tok = ARGV[2], ARGV[3]
if redis.call('EXISTS', R) == 0 or redis.call('HGET', R, 'settled') == '1' then
  return {'ok', int(now)}
end
local f = redis.call('HMGET', R, 'id', 'cost', 'tokens', 'lease', 'n')
local id, old, oldtok, lease, n = f[1], f[2], f[3], tonumber(f[4]), tonumber(f[5])
local held = {}
for i = 1, n do
  local g = redis.call('HMGET', R, 's' .. i, 'l' .. i, 'p' .. i)
  sweep(g[1], now)
  if redis.call('HEXISTS', g[1] .. ':res', id) == 1 then
    held[#held + 1] = {i, g[1], g[2], g[3]}
  end
end
if #held == 0 then return {'ok', int(now)} end
if not le(big(cost), big(old)) then
  for _, h in ipairs(held) do
    local S, limit, period = h[2], h[3], h[4]
    if limit ~= '' then
      local spent, reserved = spent_in(S, period, now), reserved_in(S)
      -- spent + reserved + (cost - old) <= limit, without a subtraction.
      if not le(add(add(big(spent), big(reserved)), big(cost)), add(big(limit), big(old))) then
        return {'budget', int(now), h[1], spent, reserved, old}
      end
    end
  end
end
for _, h in ipairs(held) do
  local S, limit = h[2], h[3]
  local b = '0'
  if limit ~= '' then
    b = '1'
    hadd(S .. ':c', 'reserved', old, '-')
    hadd(S .. ':c', 'reserved', cost, '')
  end
  hadd(S .. ':c', 'rtok', oldtok, '-')
  hadd(S .. ':c', 'rtok', tok, '')
  redis.call('HSET', S .. ':res', id, cost .. ' ' .. tok .. ' ' .. b)
  redis.call('ZADD', S .. ':exp', now + lease, id)
end
redis.call('HSET', R, 'cost', cost, 'tokens', tok)
redis.call('PEXPIRE', R, int(2 * lease + 60000))
return {'ok', int(now)}
