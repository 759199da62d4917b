-- Pin the verdict a worker is about to publish for a transaction, unless one is pinned already:
-- a transaction decided twice must be decided the same way (the contract), and what decided it
-- the first time (the model, the blocklists, the thresholds, the code) can have changed since.
-- Touches one card's pins (one hash slot).
--
-- KEYS[1]  hash  transaction id -> the verdict first pinned for it (streamer/verdicts.py)
-- ARGV     tx_id, verdict
-- returns  nil when this verdict is now the transaction's, or the one pinned before it (then
--          the worker publishes that one instead)
--
-- The worker pins before it publishes, so whatever it published is pinned. Two workers
-- deciding the same transaction at once (one of them about to lose its partition) each pin
-- and read in one step here: the second publishes the first one's verdict. The card's window
-- trims its pins with its stats (customer.lua).
-- The store prepends TTL (s) as a constant.
local held = redis.call('HGET', KEYS[1], ARGV[1])
if not held then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('EXPIRE', KEYS[1], TTL)
return held
