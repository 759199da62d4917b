-- Pin the verdict a worker is about to publish for a transaction, unless one is pinned already:
-- a transaction decided twice must be decided the same way (the contract), and what decided it
-- the first time (the model, the blocklists, the thresholds, the code) can have changed since.
-- Touches one card's keys (one hash slot).
--
-- KEYS[1]  hash  transaction id -> its verdict's score, outcome and model version, first
--                pinned (streamer/verdicts.py)
-- KEYS[2]  hash  transaction id -> that verdict's reasons, when it has any
-- KEYS[3]  hash  the card's first stats (customer.lua): which transactions its window holds
-- ARGV     tx_id, the verdict's two parts (its reasons empty when it has none), replace ('1':
--          pin this one in place of the one pinned, which the worker could not read)
-- returns  the two parts of the verdict pinned before (then the worker publishes that one
--          instead), or nil: this one is now pinned, or the window does not hold the
--          transaction (nothing is pinned)
--
-- The worker pins before it publishes, so whatever it published is pinned. Two workers
-- deciding the same transaction at once (one of them about to lose its partition) each pin
-- and read in one step here: the second publishes the first one's verdict. Sent again after a
-- lost reply (the store retries a failed round trip), a call answers the verdict it pinned.
--
-- Only a transaction the card's window holds is pinned: customer.lua trims a pin with the
-- transaction's stats, and a pin for one it no longer holds (trimmed by a transaction 44 days
-- later in the same batch; or a decision rebuild-state reads for a transaction the rebuilt
-- windows do not hold) would stay for good. The keys' time to live is set where they are
-- written, as customer.lua sets its own where it records: a card that only sees repeats
-- lets both expire together.
-- The store prepends TTL (s) as a constant.
local id, reasons, replace = ARGV[1], ARGV[3], ARGV[4] == '1'
local held = redis.call('HGET', KEYS[1], id)
if held and not replace then
  return {held, redis.call('HGET', KEYS[2], id) or ''}
end
if redis.call('HEXISTS', KEYS[3], id) == 0 then return nil end
redis.call('HSET', KEYS[1], id, ARGV[2])
if #reasons > 0 then
  redis.call('HSET', KEYS[2], id, reasons)
elseif held then
  redis.call('HDEL', KEYS[2], id)
end
redis.call('EXPIRE', KEYS[1], TTL)
redis.call('EXPIRE', KEYS[2], TTL)
return nil
