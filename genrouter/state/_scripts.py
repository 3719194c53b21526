"""The Lua scripts of the Redis backend (each runs atomically in Redis).

Times come from the Redis server's clock (``TIME``), so hosts whose clocks differ agree.
Numbers go back as strings: Redis truncates a Lua number in a reply to an integer.
"""

from __future__ import annotations

__all__ = ["BUCKETS", "BUDGET", "CLAIM", "FAILURE", "LATENCY", "NOW_MS"]

BUCKETS = 64  # budget buckets per window (as the local Budget)

# KEYS: fail, trip, open. ARGV: threshold, window_ms, cooldown_ms, trip_ttl_ms.
FAILURE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[4])
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# KEYS: trip, open, probe. ARGV: probe_ttl_ms. 1 = ticket taken, 0 = blocked, 2 = closed.
CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 2 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[1]) then return 1 end
return 0
"""

# Redis's own clock in milliseconds, as `now` (every script that ages things uses it).
NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# One process's budget lease, in one atomic step. KEYS: spent (money per bucket), res (lease
# id -> amount held), exp (lease id -> when it expires). ARGV: window_ms, lease id, spend
# (settled since the last call), keep (what the process still holds: calls in flight and
# what is left of its lease), need, up_to, limit, ttl_ms, share.
# Drops expired leases and old buckets, adds the spend, then grants at least `need` and at
# most `up_to` (and a lease of `share` of the money others do not hold), or -1 when even
# `need` does not fit; the
# lease becomes keep + granted. Invariant at every grant: spent + every lease <= limit.
BUDGET = (
    NOW_MS
    + """
local window = tonumber(ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, id in ipairs(dead) do redis.call('HDEL', KEYS[2], id) end
if #dead > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
local bucket = math.floor(now * """
    + str(BUCKETS)
    + """ / window)
local oldest = bucket - """
    + str(BUCKETS)
    + """
local spent = 0
local rows = redis.call('HGETALL', KEYS[1])
for i = 1, #rows, 2 do
  if tonumber(rows[i]) < oldest then redis.call('HDEL', KEYS[1], rows[i])
  else spent = spent + tonumber(rows[i + 1]) end
end
local reserved = 0
for _, v in ipairs(redis.call('HVALS', KEYS[2])) do reserved = reserved + tonumber(v) end
local id = ARGV[2]
local others = reserved - tonumber(redis.call('HGET', KEYS[2], id) or '0')
local spend = tonumber(ARGV[3])
if spend > 0 then
  redis.call('HINCRBYFLOAT', KEYS[1], tostring(bucket), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.floor(window * 2))
  spent = spent + spend
end
local keep = tonumber(ARGV[4])
local need = tonumber(ARGV[5])
local up_to = tonumber(ARGV[6])
local granted = 0
if need > 0 or up_to > 0 then
  local available = tonumber(ARGV[7]) - spent - others
  local free = available - keep
  -- A nano-dollar of slack, so that float rounding never refuses money that is there.
  if free + 1e-9 < need then
    granted = -1
  else
    -- One lease holds at most `share` of what other processes do not hold, but always
    -- the call in hand when it fits.
    local cap = available * tonumber(ARGV[9]) - keep
    granted = math.max(math.min(up_to, cap), need)
    granted = math.max(math.min(granted, math.max(free, need)), 0)
    -- A top-up (need 0) below the slack is rounding residue of the cap (seen: 1.4e-17),
    -- not money: granting it keeps the lease from ever being capped, so it tops up again.
    if need <= 0 and granted < 1e-9 then granted = 0 end
  end
end
local total = keep + math.max(granted, 0)
local ttl = tonumber(ARGV[8])
if total > 0 then
  redis.call('HSET', KEYS[2], id, tostring(total))
  redis.call('ZADD', KEYS[3], now + ttl, id)
  for i = 2, 3 do
    if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
  end
else
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
return {tostring(granted), tostring(spent), tostring(others)}
"""
)

# KEYS: lat. ARGV: ttft (or ''), output tokens, tokens/s (or ''), alpha, tau_ms, ttl_ms.
# The old estimate decays with its age before the new observation is folded in; answers
# with the merged row.
LATENCY = (
    NOW_MS
    + """
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or '0')
local keep = 1 - tonumber(ARGV[4])
if at > 0 then keep = keep * math.exp(-(now - at) / tonumber(ARGV[5])) end
local function fold(field, value)
  if value == '' then return end
  local old = redis.call('HGET', KEYS[1], field)
  local new = tonumber(value)
  if old then new = tonumber(old) * keep + new * (1 - keep) end
  redis.call('HSET', KEYS[1], field, tostring(new))
end
fold('ttft', ARGV[1])
if tonumber(ARGV[2]) > 0 then fold('out', ARGV[2]) end
fold('tps', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HSET', KEYS[1], 'at', now)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return redis.call('HGETALL', KEYS[1])
"""
)
