-- One customer's event-time windows: record a transaction (idempotent per id) and read the
-- windows that end at it. Touches only this customer's keys (one hash slot: Redis Cluster ready).
--
-- KEYS[1]  zset  member -> event time (epoch ms); a member is the transaction's amount and event
--                time as two little-endian doubles, then its id (keys.customer_member); an
--                amount its currency had no rate for is negated there
-- KEYS[2]  hash  transaction id -> the stats first computed for it, packed as below, then
--                its fingerprint
-- KEYS[3], KEYS[4]  hashes  transaction id -> the verdict first published for it, and its
--                reasons (pin.lua): trimmed here with the stats, not read
-- ARGV     tx_id, ts_ms, member, converted (1 if the amount is in the model's currency, 0 if
--          its currency had no rate), fingerprint (keys.fingerprint; empty: not checked)
-- The store prepends RETENTION (ms), TTL (s), WINDOWS (ms, ascending), HIGH_MS, HIGH_FACTOR,
-- READ_MAX (the most of the widest window read), ID_AT (where a member's id starts, 1-based) and
-- STATS_BYTES (the answer's length) as constants.
-- returns  {count_w, sum_w ...per window, gap_ms, median, high, amount, converted} packed as
--          little-endian doubles in one string: median is that of the other transactions' amounts
--          in the widest window (0 if none), high how many of those in the last HIGH_MS were
--          above HIGH_FACTOR x median, amount and converted this transaction's own as the window
--          first recorded them; or 'reused' when the id's first transaction had another
--          fingerprint (nothing is recorded then)
--
-- A window holds the transactions in (t - w, t) and this one. Other transactions at exactly t are
-- left out: whether they were already seen depends on arrival order, and a replayed transaction
-- must get the same features as the first time.
--
-- An amount whose currency had no rate is a number in another unit: added as written, 6,000 JPY
-- would weigh as 6,000 EUR in the card's means and median for 30 days. Such a transaction counts
-- in its windows, but its amount counts as the mean of the readable ones there (a window's sum
-- is their sum scaled to its count), and the median and high count are taken over the readable
-- amounts of the others. A window where no amount is readable has an unknown sum (NaN): the
-- scorer gives what cannot be known its typical value (streamer/scoring.py).
--
-- A transaction seen before (a re-delivery) gets the stats first computed for it: a fast backlog
-- can move the card's later transactions past the retention horizon of this one's windows
-- before the repeat arrives, an exchange rate can change its converted amount (or give a rate
-- to a currency that had none), and a repeated decision must be the same. Stats stored by
-- older workers are shorter: without the converted flag, or without the amount too. They get
-- this delivery's (the amount its member holds), and are kept so. Stats stored by
-- a newer worker are longer, its fields appended to these: this version's part is answered,
-- and they are kept as they are.
--
-- A transaction id stands for one transaction (the contract): the stats are stored followed by
-- the transaction's fingerprint (its time, card, terminal, amount and currency, hashed), and a
-- different transaction under an id already here is answered 'reused' and recorded nowhere,
-- rather than given the first one's stats. A fingerprint is a tag byte and 8 bytes, so a stored
-- value ends with one exactly when its length is one more than a multiple of 8; stats stored
-- without (by a worker from before fingerprints, or upgraded below) are answered unchecked.
--
-- This runs once per event on the hot path and its cost grows with the card's history, so that
-- history is read in one range query whose members carry the amount and time in binary: one
-- struct.unpack per member, where a separate amounts hash, scores sent as text and numbers
-- parsed from text cost more than twice as much in Redis (measured with the book's history).
-- Each transaction's windows are settled at the first (narrowest) window that holds it. The
-- read stops at the latest READ_MAX transactions of the widest window (WINDOW_READ_MAX in
-- definitions.py): past that, the counts come from ZCOUNT, the sums count the rest at the mean
-- of what was read, and the median and high count are those of what was read.
local tonumber, format, unpackd = tonumber, string.format, struct.unpack
local zkey, statskey, pinkey, whykey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, member, fp = ARGV[1], ARGV[3], ARGV[5]
local t, converted = tonumber(ARGV[2]), tonumber(ARGV[4])
local nwin = #WINDOWS

-- this transaction's own amount, as written or converted (its member holds an unreadable one
-- negated)
local own = math.abs(unpackd('<d', member))

local first = redis.call('HGET', statskey, id)
if first then
  if #fp > 0 and #first % 8 == 1 and string.sub(first, -#fp) ~= fp then return 'reused' end
  if #first >= STATS_BYTES then return string.sub(first, 1, STATS_BYTES) end
  if #first == STATS_BYTES - 16 then first = first .. struct.pack('<d', own) end
  first = first .. struct.pack('<d', converted)
  redis.call('HSET', statskey, id, first)
  return first
end

redis.call('ZADD', zkey, 'NX', t, member)

local horizon = '(' .. format('%d', t - RETENTION)
local old = redis.call('ZRANGEBYSCORE', zkey, '-inf', horizon)
if #old > 0 then
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', horizon)
  for i = 1, #old do old[i] = string.sub(old[i], ID_AT) end
  -- Lua passes at most about 8,000 values to one call (unpack): a long quiet spell can trim more
  for i = 1, #old, 1000 do
    redis.call('HDEL', statskey, unpack(old, i, math.min(i + 999, #old)))
    redis.call('HDEL', pinkey, unpack(old, i, math.min(i + 999, #old)))
    redis.call('HDEL', whykey, unpack(old, i, math.min(i + 999, #old)))
  end
end
redis.call('EXPIRE', zkey, TTL)

-- the latest READ_MAX members of the widest window, newest first (WINDOW_READ_MAX): a card
-- that many transactions share costs no more per call than one with READ_MAX of them
local rows = redis.call('ZREVRANGEBYSCORE', zkey, format('%d', t),
                        '(' .. format('%d', t - WINDOWS[nwin]), 'LIMIT', 0, READ_MAX)

-- lows[w]: a transaction is in window w when its time is above lows[w]. sums and others hold
-- the amounts that can be read, known counts them; counts start at this transaction
local lows, counts, sums, known = {}, {}, {}, {}
for w = 1, nwin do lows[w] = t - WINDOWS[w]; counts[w] = 1; sums[w] = 0; known[w] = 0 end
local high_low = t - HIGH_MS
local prev = -1
local others, recent, m, r = {}, {}, 0, 0
-- oldest first, so that the sums add in the zset's (time, member) order, as the twin does
for i = #rows, 1, -1 do
  local a, s = unpackd('<dd', rows[i])
  if s < t then
    -- windows ascend: once a transaction is in one, it is in every wider one
    for w = 1, nwin do
      if s > lows[w] then
        for v = w, nwin do
          counts[v] = counts[v] + 1
          if a >= 0 then sums[v] = sums[v] + a; known[v] = known[v] + 1 end
        end
        break
      end
    end
    prev = s
    if a >= 0 then
      m = m + 1; others[m] = a
      if s > high_low then r = r + 1; recent[r] = a end
    end
  end
end
-- this transaction comes last in that order (the others at its time are left out); its
-- amount as its member holds it, negated when it cannot be read
local written = unpackd('<d', member)
if written >= 0 then
  for w = 1, nwin do sums[w] = sums[w] + written; known[w] = known[w] + 1 end
end
-- a full read may have left older transactions out: count every one, without reading them
if #rows == READ_MAX then
  local before = '(' .. format('%d', t)
  for w = 1, nwin do
    counts[w] = redis.call('ZCOUNT', zkey, '(' .. format('%d', lows[w]), before) + 1
  end
end

-- an amount that cannot be read (or was not) counts as the mean of those that were, so the
-- card's windows are not skewed by it; with none readable, the window's sum is unknown
for w = 1, nwin do
  if known[w] < counts[w] then
    if known[w] > 0 then sums[w] = sums[w] / known[w] * counts[w] else sums[w] = 0 / 0 end
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
  out[2 * w - 1] = counts[w]
  out[2 * w] = sums[w]
end
out[2 * nwin + 1] = prev >= 0 and t - prev or -1
out[2 * nwin + 2] = median
out[2 * nwin + 3] = high
out[2 * nwin + 4] = own
out[2 * nwin + 5] = converted
local packed = struct.pack('<' .. string.rep('d', #out), unpack(out))
redis.call('HSET', statskey, id, packed .. fp)
redis.call('EXPIRE', statskey, TTL)
return packed
