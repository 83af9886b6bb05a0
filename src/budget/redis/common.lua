-- Shared by every script of the Redis ledger (prepended to each one).
-- Money is integer pico-dollars. Redis integers (INCRBY, HINCRBY) are 64-bit and exact;
-- Lua numbers are doubles, exact only to 2^53, so amounts are never summed as Lua
-- numbers: a decimal string is split into {dollars, picos} and compared as a pair.
local PICOS = 1000000000000

local function big(s)
  s = tostring(s or '0')
  if s == '' or string.sub(s, 1, 1) == '-' then return {0, 0} end
  local n = #s
  if n <= 12 then return {0, tonumber(s)} end
  return {tonumber(string.sub(s, 1, n - 12)), tonumber(string.sub(s, n - 11))}
end

local function add(a, b)
  local hi, lo = a[1] + b[1], a[2] + b[2]
  if lo >= PICOS then hi, lo = hi + 1, lo - PICOS end
  return {hi, lo}
end

local function le(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] <= b[2])
end

local function int(x) return string.format('%d', x) end

-- Milliseconds since the epoch on the server's clock (or the test clock in ARGV[1]).
local function now_ms()
  if ARGV[1] ~= '' then return tonumber(ARGV[1]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Add a decimal string to a hash field (nothing for zero: "-0" is not an integer).
local function hadd(key, field, s, sign)
  if s ~= '0' and s ~= '' then redis.call('HINCRBY', key, field, sign .. s) end
end

-- The first second of the window of `period` holding `secs` (UTC calendar).
local function window_start(period, secs)
  local day = 86400
  local days = math.floor(secs / day)
  if period == 'hour' then return secs - secs % 3600 end
  if period == 'day' then return days * day end
  if period == 'week' then return (days - (days + 3) % 7) * day end
  if period == 'month' then
    -- Day of the month from the civil calendar (days since 1970-01-01).
    local z = days + 719468
    local era = math.floor(z / 146097)
    local doe = z - era * 146097
    local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
      - math.floor(doe / 146096)) / 365)
    local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
    local mp = math.floor((5 * doy + 2) / 153)
    local d = doy - math.floor((153 * mp + 2) / 5) + 1
    return (days - (d - 1)) * day
  end
  return 0
end

-- How long a window's spend key is kept: longer than any window of its period.
local KEEP = {hour = 7200, day = 172800, week = 691200, month = 2764800}
local PERIODS = {'hour', 'day', 'week', 'month', 'total'}

local function spend_key(S, period, now)
  return S .. ':sp:' .. period .. ':' .. int(window_start(period, math.floor(now / 1000)))
end

-- Give back what request `id` holds in scope S (once: the entry is removed).
-- Charge `cost` to every window of scope S and its tokens to the minute.
local function charge(S, id, cost, tok, now)
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

local function release(S, id)
  local entry = redis.call('HGET', S .. ':res', id)
  if entry then
    local cost, tok, b = string.match(entry, '^(%S+) (%S+) (%S+)$')
    if b == '1' then hadd(S .. ':c', 'reserved', cost, '-') end
    hadd(S .. ':c', 'rtok', tok, '-')
    redis.call('HDEL', S .. ':res', id)
  end
  redis.call('ZREM', S .. ':exp', id)
end

-- Release the reservations of S whose lease expired, and forget the minute's past.
local function sweep(S, now)
  local gone = redis.call('ZRANGEBYSCORE', S .. ':exp', '-inf', now)
  for _, id in ipairs(gone) do release(S, id) end
  redis.call('ZREMRANGEBYSCORE', S .. ':adm', '-inf', now - 60000)
  redis.call('ZREMRANGEBYSCORE', S .. ':chg', '-inf', now - 60000)
end

-- Tokens charged in the last minute plus those reserved, and the charges in time order.
local function tokens(S)
  local charged = redis.call('ZRANGE', S .. ':chg', 0, -1, 'WITHSCORES')
  local used = tonumber(redis.call('HGET', S .. ':c', 'rtok') or '0')
  for i = 1, #charged, 2 do
    used = used + tonumber(string.match(charged[i], '^(%d+):'))
  end
  return used, charged
end

-- When enough charged tokens leave the minute for S to be under `tpm`.
local function tpm_frees_at(used, charged, tpm, now)
  for i = 1, #charged, 2 do
    used = used - tonumber(string.match(charged[i], '^(%d+):'))
    if used < tpm then return tonumber(charged[i + 1]) + 60000 end
  end
  return now + 1000
end

local function spent_in(S, period, now)
  return redis.call('GET', spend_key(S, period, now)) or '0'
end

local function reserved_in(S)
  return redis.call('HGET', S .. ':c', 'reserved') or '0'
end
