-- Charge a request admitted without any limit (nothing was reserved for it): its cost
-- to every window of every scope, its tokens to the minute.
-- KEYS: each scope's key prefix. ARGV: now override, request id, cost, tokens.
local now = now_ms()
local id, cost, tok = ARGV[2], ARGV[3], ARGV[4]
for i = 1, #KEYS do
  charge(KEYS[i], id, cost, tok, now)
end
return 1
