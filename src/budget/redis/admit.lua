-- Admit one request against every scope's limits, then hold its reservation.
-- KEYS[1]: the request's hash; KEYS[2..]: each scope's key prefix.
-- ARGV: now override, request id, cost, tokens, lease ms, request ttl ms, then for each
-- scope: rpm, tpm, max_concurrent, budget limit, budget period ('' when absent).
-- Reply: {'ok', now} or {limit, now, scope index, a, b}.
local now = now_ms()
local R = KEYS[1]
local id, cost, tok = ARGV[2], ARGV[3], ARGV[4]
local lease, ttl = tonumber(ARGV[5]), ARGV[6]
if redis.call('EXISTS', R) == 1 then return {'ok', int(now)} end
local n = #KEYS - 1
for i = 1, n do
  local S, o = KEYS[i + 1], 6 + (i - 1) * 5
  local rpm, tpm, maxc, limit, period = ARGV[o + 1], ARGV[o + 2], ARGV[o + 3], ARGV[o + 4], ARGV[o + 5]
  sweep(S, now)
  if rpm ~= '' and redis.call('ZCARD', S .. ':adm') >= tonumber(rpm) then
    local oldest = redis.call('ZRANGE', S .. ':adm', 0, 0, 'WITHSCORES')
    local at = oldest[2] and tonumber(oldest[2]) or now
    return {'rpm', int(now), i, int(at + 60000), ''}
  end
  if tpm ~= '' then
    local used, charged = tokens(S)
    if used >= tonumber(tpm) then
      return {'tpm', int(now), i, int(tpm_frees_at(used, charged, tonumber(tpm), now)), ''}
    end
  end
  if maxc ~= '' and redis.call('HLEN', S .. ':res') >= tonumber(maxc) then
    return {'max_concurrent', int(now), i, int(now + 1000), ''}
  end
  if limit ~= '' then
    local spent, reserved = spent_in(S, period, now), reserved_in(S)
    if not le(add(add(big(spent), big(reserved)), big(cost)), big(limit)) then
      return {'budget', int(now), i, spent, reserved}
    end
  end
end
redis.call('HSET', R, 'id', id, 'cost', cost, 'tokens', tok, 'lease', int(lease), 'n', n)
for i = 1, n do
  local S, o = KEYS[i + 1], 6 + (i - 1) * 5
  local limit, period = ARGV[o + 4], ARGV[o + 5]
  local b = '0'
  if limit ~= '' then b = '1'; hadd(S .. ':c', 'reserved', cost, '') end
  hadd(S .. ':c', 'rtok', tok, '')
  redis.call('ZADD', S .. ':adm', now, id)
  redis.call('PEXPIRE', S .. ':adm', 120000)
  redis.call('HSET', S .. ':res', id, cost .. ' ' .. tok .. ' ' .. b)
  redis.call('ZADD', S .. ':exp', now + lease, id)
  redis.call('HSET', R, 's' .. i, S, 'l' .. i, limit, 'p' .. i, period)
end
redis.call('PEXPIRE', R, ttl)
return {'ok', int(now)}
