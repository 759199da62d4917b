-- One customer's event-time windows: record a transaction (idempotent per id) and read the
-- windows that end at it. Touches only this customer's keys (one hash slot: Redis Cluster ready).
--
-- KEYS[1]  zset  transaction id -> event time (epoch ms)
-- KEYS[2]  hash  transaction id -> amount (shortest round-trip decimal text)
-- KEYS[3]  hash  transaction id -> "count_1,sum_1,..."  the stats first computed for it
-- ARGV     tx_id, ts_ms, amount
-- The store prepends RETENTION (ms), TTL (s), WINDOWS (ms, ascending), HIGH_MS and HIGH_FACTOR
-- as constants.
-- returns  {count_w, sum_w ...per window, gap_ms, median, high}  as strings (Lua numbers would
--          be truncated): median is that of the other transactions' amounts in the widest window
--          (0 if none), high how many of those in the last HIGH_MS were above HIGH_FACTOR x median
--
-- A window holds the transactions in (t - w, t) and this one. Other transactions at exactly t are
-- left out: whether they were already seen depends on arrival order, and a replayed transaction
-- must get the same features as the first time.
--
-- A transaction seen before (a re-delivery) gets the stats first computed for it: a fast backlog
-- can move the card's later transactions past the retention horizon of this one's windows
-- before the repeat arrives, and a repeated decision must be the same.
--
-- This runs once per event on the hot path and its cost grows with the card's history, so that
-- history is read in a single pass, with locals, each transaction's windows settled at the first
-- (narrowest) window that holds it.
local tonumber, format = tonumber, string.format
local zkey, hkey, firstkey = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]
local t = tonumber(ARGV[2])
local nwin = #WINDOWS

local first = redis.call('HGET', firstkey, id)
if first then
  local out = {}
  for v in string.gmatch(first, '[^,]+') do out[#out + 1] = v end
  return out
end

if redis.call('HSETNX', hkey, id, ARGV[3]) == 1 then
  redis.call('ZADD', zkey, t, id)
end

local horizon = '(' .. format('%d', t - RETENTION)
local old = redis.call('ZRANGEBYSCORE', zkey, '-inf', horizon)
if #old > 0 then
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', horizon)
  redis.call('HDEL', hkey, unpack(old))
  redis.call('HDEL', firstkey, unpack(old))
end
redis.call('EXPIRE', zkey, TTL)
redis.call('EXPIRE', hkey, TTL)

local rows = redis.call('ZRANGEBYSCORE', zkey, '(' .. format('%d', t - WINDOWS[nwin]),
                        format('%d', t), 'WITHSCORES')
local n = #rows / 2
local ids = {}
for i = 1, n do ids[i] = rows[2 * i - 1] end
local amounts = n > 0 and redis.call('HMGET', hkey, unpack(ids)) or {}

-- lows[w]: a transaction is in window w when its time is above lows[w]
local lows, counts, sums = {}, {}, {}
for w = 1, nwin do lows[w] = t - WINDOWS[w]; counts[w] = 0; sums[w] = 0 end
local high_low = t - HIGH_MS
local prev = -1
local others, recent, m, r = {}, {}, 0, 0
for i = 1, n do
  local s = tonumber(rows[2 * i])
  local mine = ids[i] == id
  if s < t or mine then
    local a = tonumber(amounts[i]) or 0
    -- windows ascend: once a transaction is in one, it is in every wider one
    for w = 1, nwin do
      if s > lows[w] then
        for v = w, nwin do counts[v] = counts[v] + 1; sums[v] = sums[v] + a end
        break
      end
    end
    if not mine then
      if s > prev then prev = s end
      m = m + 1; others[m] = a
      if s > high_low then r = r + 1; recent[r] = a end
    end
  end
end

local median = 0
if m > 0 then
  table.sort(others)
  if m % 2 == 1 then
    median = others[(m + 1) / 2]
  else
    median = (others[m / 2] + others[m / 2 + 1]) / 2
  end
end
local high, bar = 0, HIGH_FACTOR * median
for i = 1, r do
  if recent[i] > bar then high = high + 1 end
end

local out = {}
for w = 1, nwin do
  out[2 * w - 1] = tostring(counts[w])
  out[2 * w] = format('%.17g', sums[w])
end
out[2 * nwin + 1] = prev >= 0 and format('%d', t - prev) or '-1'
out[2 * nwin + 2] = format('%.17g', median)
out[2 * nwin + 3] = tostring(high)
redis.call('HSET', firstkey, id, table.concat(out, ','))
redis.call('EXPIRE', firstkey, TTL)
return out
