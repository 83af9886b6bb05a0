-- Settle a request: charge its cost to every window of every scope it was admitted in,
-- count its tokens in the minute, release its reservation and slot. Idempotent.
-- KEYS[1]: the request's hash. ARGV: now override, cost, tokens, ms to remember it.
-- Reply: 1 when charged, 0 when already settled or never admitted.
local now = now_ms()
local R = KEYS[1]
local cost, tok, keep = ARGV[2], ARGV[3], ARGV[4]
if redis.call('EXISTS', R) == 0 or redis.call('HGET', R, 'settled') == '1' then return 0 end
local f = redis.call('HMGET', R, 'id', 'n')
local id, n = f[1], tonumber(f[2])
for i = 1, n do
  local S = redis.call('HGET', R, 's' .. i)
  release(S, id)
  charge(S, id, cost, tok, now)
end
redis.call('HSET', R, 'settled', '1')
redis.call('PEXPIRE', R, keep)
return 1
