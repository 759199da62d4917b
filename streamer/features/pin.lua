-- Pin the verdict a worker is about to publish for a transaction, unless one is pinned already:
-- a transaction decided twice must be decided the same way (the contract), and what decided it
-- the first time (the model, the blocklists, the thresholds, the code) can have changed since.
-- Touches one card's pins (one hash slot).
--
-- KEYS[1]  hash  transaction id -> its verdict's score, outcome and model version, first
--                pinned (streamer/verdicts.py)
-- KEYS[2]  hash  transaction id -> that verdict's reasons, when it has any
-- KEYS[3]  hash  the card's first stats (customer.lua): which transactions its window holds
-- ARGV     tx_id, the verdict's two parts (its reasons empty when it has none), held_only ('1':
--          pin only for a transaction the card's window holds, as rebuild-state restores
--          pins from the decisions topic: a transaction trimmed from the window would leave
--          its pin behind for good)
-- returns  nil when this verdict is now the transaction's (or, held_only, the window does
--          not hold it), or the two parts of the one pinned before it (then the worker
--          publishes that one instead)
--
-- The worker pins before it publishes, so whatever it published is pinned. Two workers
-- deciding the same transaction at once (one of them about to lose its partition) each pin
-- and read in one step here: the second publishes the first one's verdict. The card's window
-- trims its pins with its stats (customer.lua). Sent again after a lost reply (the store
-- retries a failed round trip), a call answers the verdict it pinned: the same one.
-- The store prepends TTL (s) as a constant.
local id = ARGV[1]
local held = redis.call('HGET', KEYS[1], id)
if held then
  held = {held, redis.call('HGET', KEYS[2], id) or ''}
elseif ARGV[4] == '1' and redis.call('HEXISTS', KEYS[3], id) == 0 then
  return nil
else
  redis.call('HSET', KEYS[1], id, ARGV[2])
  if #ARGV[3] > 0 then redis.call('HSET', KEYS[2], id, ARGV[3]) end
end
redis.call('EXPIRE', KEYS[1], TTL)
redis.call('EXPIRE', KEYS[2], TTL)
return held
