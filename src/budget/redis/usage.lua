-- One scope's counters now. KEYS[1]: the scope's key prefix.
-- ARGV: now override, the budget period (day without a budget).
-- Reply: {now, spent, reserved, requests last minute, tokens last minute, open}.
local now = now_ms()
local S = KEYS[1]
sweep(S, now)
local used = tokens(S)
return {int(now), spent_in(S, ARGV[2], now), reserved_in(S),
  redis.call('ZCARD', S .. ':adm'), int(used), redis.call('HLEN', S .. ':res')}
