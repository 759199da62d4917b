-- Take back a transaction one entity recorded when the other refused it as a reused id
-- (customer.lua and terminal.lua answer 'reused'): a refused transaction must not stay in a
-- window. Touches one card's or one terminal's keys (one hash slot).
--
-- KEYS[1]  zset  the entity's transactions, scored by event time (ms)
-- KEYS[2]  hash  transaction id -> its first stats, then its fingerprint
-- ARGV     tx_id, ts_ms, fingerprint, id_at (where a member's id starts, 1-based: 17 in a
--          card's window, 1 in a terminal's)
-- returns  1 if the transaction was taken back, 0 if this entity holds another under the id
--          (the one it refused) or none
--
-- Only a transaction stored with this fingerprint is taken back (a stored value ends with one
-- when its length is one more than a multiple of 8: keys.py). Its zset member is found by its
-- time and id, not rebuilt from its amount: a card's member holds the amount as converted, and
-- a rate changed since would make another member. A terminal that held the id from a fraud
-- label, at the label's time, keeps it there.
local id, ts, fp = ARGV[1], ARGV[2], ARGV[3]
local first = redis.call('HGET', KEYS[2], id)
if #fp == 0 or not first or #first % 8 ~= 1 or string.sub(first, -#fp) ~= fp then return 0 end
local at = tonumber(ARGV[4])
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ts, ts)) do
  if string.sub(m, at) == id then redis.call('ZREM', KEYS[1], m) end
end
redis.call('HDEL', KEYS[2], id)
return 1
