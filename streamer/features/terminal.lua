-- One terminal's windows: record a transaction (idempotent per id) and read the windows that
-- end one label delay before it. Touches only this terminal's keys (one hash slot).
--
-- KEYS[1]  zset  transaction id -> event time (ms)       every transaction seen at the terminal
-- KEYS[2]  zset  transaction id -> event time (ms)       transactions labelled fraud
-- KEYS[3]  hash  transaction id -> reported time (ms)    when each fraud became known
-- KEYS[4]  hash  transaction id -> the counts first computed for it, packed as below, then
--                its fingerprint
-- ARGV     tx_id, ts_ms, fingerprint (keys.fingerprint; empty: not checked)
-- The store prepends RETENTION (ms), TTL (s), DELAY (ms), WINDOWS (ms, ascending), READ_MAX
-- (the most known frauds of the widest window read) and STATS_BYTES (the length of an answer)
-- as constants.
-- returns  {transactions_w, frauds_w ...per window, run} packed as little-endian doubles in one
--          string, as customer.lua answers: the store reads a batch's answers in one pass. run is
--          how many of the terminal's latest transactions in the widest window are known frauds
--          in a row, counted back from the latest (in the zset's order: time, then id); or
--          'reused' when the id's first transaction had another fingerprint (as customer.lua)
--
-- A window is (t - delay - w, t - delay]. A fraud counts only when it was reported at or before
-- t, so replaying history gives the same answer whenever its labels arrived.
--
-- A transaction seen before (a re-delivery) gets the counts first computed for it: other
-- partitions may have moved the windows since, and a repeated decision must be the same. Shorter
-- counts were stored by a worker that answered fewer of them: they are computed again, so an
-- upgrade needs no migration of this hash. Longer ones were stored by a newer worker, whose
-- counts only append to these: this version's part of them is answered, and they are kept.
local txkey, fraudkey, repkey, statskey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, fp = ARGV[1], ARGV[3]
local t = tonumber(ARGV[2])
local retention, ttl, delay = RETENTION, TTL, DELAY
local nwin = #WINDOWS

-- Lua passes at most about 8,000 values to one call (unpack): a busy terminal's first
-- transaction after a quiet spell can trim more, and its windows can hold more known frauds,
-- so ids go to a command in slices
local SLICE = 1000
local function hdel(key, ids)
  for i = 1, #ids, SLICE do
    redis.call('HDEL', key, unpack(ids, i, math.min(i + SLICE - 1, #ids)))
  end
end

local first = redis.call('HGET', statskey, id)
if first and #fp > 0 and #first % 8 == 1 and string.sub(first, -#fp) ~= fp then
  return 'reused'
end
if first and #first >= STATS_BYTES then return string.sub(first, 1, STATS_BYTES) end

redis.call('ZADD', txkey, 'NX', t, id)

local horizon = '(' .. string.format('%d', t - retention)
local expired = redis.call('ZRANGEBYSCORE', txkey, '-inf', horizon)
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', txkey, '-inf', horizon)
  hdel(statskey, expired)
end
local old = redis.call('ZRANGEBYSCORE', fraudkey, '-inf', horizon)
if #old > 0 then
  redis.call('ZREMRANGEBYSCORE', fraudkey, '-inf', horizon)
  hdel(repkey, old)
end
redis.call('EXPIRE', txkey, ttl)

local hi = t - delay
local his = string.format('%d', hi)
local out = {}
for w = 1, nwin do
  local lo = '(' .. string.format('%d', hi - WINDOWS[w])
  out[2 * w - 1] = redis.call('ZCOUNT', txkey, lo, his)
  out[2 * w] = 0
end

-- the widest window's far end, exclusive: the known frauds and the fraud run are read in it
local widest_lo = '(' .. string.format('%d', hi - WINDOWS[nwin])
-- the window's latest READ_MAX frauds, newest first (WINDOW_READ_MAX): a terminal with many
-- known frauds costs no more per call than one with READ_MAX of them
local frauds = redis.call('ZREVRANGEBYSCORE', fraudkey, his, widest_lo, 'WITHSCORES',
                          'LIMIT', 0, READ_MAX)
local run = 0
if #frauds == 2 * READ_MAX then
  -- older frauds of the window were not read: each counts, as reported long since
  for w = 1, nwin do
    local low, inside = hi - WINDOWS[w], 0
    for i = 2, #frauds, 2 do
      if tonumber(frauds[i]) > low then inside = inside + 1 end
    end
    out[2 * w] = redis.call('ZCOUNT', fraudkey, '(' .. string.format('%d', low), his) - inside
  end
end
if #frauds > 0 then
  local fids, known, nknown = {}, {}, 0
  for i = 1, #frauds, 2 do fids[#fids + 1] = frauds[i] end
  local reported = {}
  for i = 1, #fids, SLICE do
    local part = redis.call('HMGET', repkey, unpack(fids, i, math.min(i + SLICE - 1, #fids)))
    for j = 1, #part do reported[i + j - 1] = part[j] end
  end
  for i = 1, #fids do
    local r = tonumber(reported[i])
    if r ~= nil and r <= t then
      known[fids[i]] = true
      nknown = nknown + 1
      local s = tonumber(frauds[2 * i])
      for w = 1, nwin do
        if s > hi - WINDOWS[w] then out[2 * w] = out[2 * w] + 1 end
      end
    end
  end
  -- the run is at most the known frauds: one more of the latest transactions ends it
  if nknown > 0 then
    local latest = redis.call('ZREVRANGEBYSCORE', txkey, his, widest_lo, 'LIMIT', 0, nknown + 1)
    for i = 1, #latest do
      if not known[latest[i]] then break end
      run = run + 1
    end
  end
end
out[2 * nwin + 1] = run
local packed = struct.pack('<' .. string.rep('d', #out), unpack(out))
-- counts computed again over shorter ones keep no fingerprint: which delivery came first, the
-- transaction's own or another under its id, is not known (as customer.lua's upgrade)
if first then fp = '' end
redis.call('HSET', statskey, id, packed .. fp)
redis.call('EXPIRE', statskey, ttl)
return packed
