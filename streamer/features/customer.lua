-- One customer's event-time windows: record a transaction (idempotent per id) and read the
-- windows that end at it. Touches only this customer's keys (one hash slot: Redis Cluster ready).
--
-- KEYS[1]  zset  transaction id -> event time (epoch ms)
-- KEYS[2]  hash  transaction id -> amount (shortest round-trip decimal text)
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
local zkey, hkey = KEYS[1], KEYS[2]
local id = ARGV[1]
local t = tonumber(ARGV[2])
local retention, ttl = RETENTION, TTL
local nwin = #WINDOWS

if redis.call('HSETNX', hkey, id, ARGV[3]) == 1 then
  redis.call('ZADD', zkey, t, id)
end

local horizon = '(' .. string.format('%d', t - retention)
local old = redis.call('ZRANGEBYSCORE', zkey, '-inf', horizon)
if #old > 0 then
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', horizon)
  redis.call('HDEL', hkey, unpack(old))
end
redis.call('EXPIRE', zkey, ttl)
redis.call('EXPIRE', hkey, ttl)

local widest = WINDOWS[nwin]
local rows = redis.call('ZRANGEBYSCORE', zkey, '(' .. string.format('%d', t - widest),
                        string.format('%d', t), 'WITHSCORES')
local ids, scores = {}, {}
for i = 1, #rows, 2 do
  local s = tonumber(rows[i + 1])
  if s < t or rows[i] == id then
    ids[#ids + 1] = rows[i]
    scores[#scores + 1] = s
  end
end

local counts, sums = {}, {}
for w = 1, nwin do counts[w] = 0; sums[w] = 0 end
local prev = -1
local others, recent = {}, {}
if #ids > 0 then
  local amounts = redis.call('HMGET', hkey, unpack(ids))
  for i = 1, #ids do
    local s = scores[i]
    local a = tonumber(amounts[i]) or 0
    for w = 1, nwin do
      if s > t - WINDOWS[w] then
        counts[w] = counts[w] + 1
        sums[w] = sums[w] + a
      end
    end
    if ids[i] ~= id then
      if s > prev then prev = s end
      others[#others + 1] = a
      if s > t - HIGH_MS then recent[#recent + 1] = a end
    end
  end
end

local median = 0
local m = #others
if m > 0 then
  table.sort(others)
  if m % 2 == 1 then
    median = others[(m + 1) / 2]
  else
    median = (others[m / 2] + others[m / 2 + 1]) / 2
  end
end
local high = 0
for i = 1, #recent do
  if recent[i] > HIGH_FACTOR * median then high = high + 1 end
end

local out = {}
for w = 1, nwin do
  out[#out + 1] = tostring(counts[w])
  out[#out + 1] = string.format('%.17g', sums[w])
end
if prev >= 0 then
  out[#out + 1] = string.format('%d', t - prev)
else
  out[#out + 1] = '-1'
end
out[#out + 1] = string.format('%.17g', median)
out[#out + 1] = tostring(high)
return out
