-- Apply a fraud label to its terminal (one terminal's keys, one hash slot).
--
-- KEYS[1]  zset  transaction id -> event time    (the terminal's transactions)
-- KEYS[2]  zset  transaction id -> event time    (its known frauds)
-- KEYS[3]  hash  transaction id -> reported time
-- ARGV     tx_id, tx_ts_ms, reported_ms, is_fraud (1|0)
-- The store prepends TTL (s) as a constant.
--
-- A fraud label also records its transaction at the terminal (NX: a no-op when the worker saw
-- it), so a label for a transaction never seen still marks the terminal at its event time.
-- A fraud reported again keeps its earliest report time: the transactions between the two
-- reports knew of it, whether the second came before or after them. is_fraud = 0 withdraws
-- an earlier fraud mark.
local txkey, fraudkey, repkey = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]
local ttl = TTL
if ARGV[4] == '1' then
  redis.call('ZADD', txkey, 'NX', ARGV[2], id)
  redis.call('ZADD', fraudkey, ARGV[2], id)
  local known = tonumber(redis.call('HGET', repkey, id))
  if not known or tonumber(ARGV[3]) < known then redis.call('HSET', repkey, id, ARGV[3]) end
  redis.call('EXPIRE', txkey, ttl)
  redis.call('EXPIRE', fraudkey, ttl)
  redis.call('EXPIRE', repkey, ttl)
  return 1
end
redis.call('ZREM', fraudkey, id)
redis.call('HDEL', repkey, id)
return 0
