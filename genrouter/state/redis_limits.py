"""Per-key rate limits and spend shared on Redis (the gateway's :class:`KeyLimits`).

Built from the same ``state`` table as :class:`~genrouter.state.redis.RedisBackend` (URL,
namespace, timeouts), with a connection of its own. Keys, all under ``NAMESPACE:gw:`` and
each with a TTL:

- ``gw:rate:KEY`` a sorted set of request times (ms, Redis's clock) in the sliding window;
  one Lua script drops the old ones, counts and adds, so two processes never both take the
  last slot; TTL one window;
- ``gw:spend:KEY`` spend per time bucket (64 per window), summed and pruned by a script;
  TTL two windows.

Times come from the Redis server (``TIME`` inside the scripts), so hosts whose clocks differ
agree. When Redis fails, the limits fall back to this process's own counts
(:class:`~genrouter.state.limits.MemoryLimits`) for ``retry_s``, with one warning: a request
never fails because Redis did.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from genrouter.config import StateConfig, redact_url
from genrouter.state._scripts import NOW_MS
from genrouter.state.limits import BUCKETS, MemoryLimits, RateVerdict

__all__ = ["RedisLimits"]

logger = logging.getLogger("genrouter")

# KEYS: rate set. ARGV: limit, window_ms, member. -> {1, 0} taken, {0, ms until a slot frees}
_HIT = (
    NOW_MS
    + """
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local wait = tonumber(oldest[2]) + window - now
  if wait < 1 then wait = 1 end
  return {0, wait}
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return {1, 0}
"""
)

# KEYS: spend hash. ARGV: window_ms, cost (0: only read). -> the window's total, as a string
_SPEND = (
    NOW_MS
    + """
local window = tonumber(ARGV[1])
local bucket = math.floor(now * """
    + str(BUCKETS)
    + """ / window)
local cost = tonumber(ARGV[2])
if cost > 0 then
  redis.call('HINCRBYFLOAT', KEYS[1], tostring(bucket), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], window * 2)
end
local oldest = bucket - """
    + str(BUCKETS)
    + """
local total = 0
local rows = redis.call('HGETALL', KEYS[1])
for i = 1, #rows, 2 do
  if tonumber(rows[i]) <= oldest then redis.call('HDEL', KEYS[1], rows[i])
  else total = total + tonumber(rows[i + 1]) end
end
return tostring(total)
"""
)


def _ms(seconds: float) -> int:
    return max(math.ceil(seconds * 1000), 1)


class RedisLimits:
    """:class:`~genrouter.state.limits.KeyLimits` on Redis, falling back to local counts."""

    def __init__(self, config: StateConfig) -> None:
        assert config.url is not None
        self._config = config
        self._where = redact_url(config.url)
        self._ns = config.namespace
        self._redis = redis.Redis.from_url(
            config.url,
            socket_timeout=config.timeout_s,
            socket_connect_timeout=config.timeout_s,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
        )
        self._hit = self._redis.register_script(_HIT)
        self._spend = self._redis.register_script(_SPEND)
        self._local = MemoryLimits()
        self._down_until = 0.0
        self._seq = 0
        self._tag = os.urandom(6).hex()  # members of the rate sets are unique per process

    def __repr__(self) -> str:
        return f"RedisLimits({self._where!r}, namespace={self._ns!r})"

    def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """*script* on Redis, or ``None`` while Redis is down (one warning per outage)."""
        if self._down_until and time.monotonic() < self._down_until:
            return None
        try:
            result = script(keys, args)
        except (redis.RedisError, OSError) as exc:
            if not self._down_until:
                logger.warning(
                    "genrouter: gateway limits at %s unavailable (%s); counting in this "
                    "process only, retrying in %gs",
                    self._where,
                    type(exc).__name__,
                    self._config.retry_s,
                )
            self._down_until = time.monotonic() + self._config.retry_s
            return None
        if self._down_until:
            self._down_until = 0.0
            logger.info("genrouter: gateway limits at %s reachable again", self._where)
        return result

    def hit(self, key: str, *, limit: int, window_s: float) -> RateVerdict:
        self._seq += 1
        member = f"{self._tag}:{self._seq}"
        got = self._run(self._hit, [f"{self._ns}:gw:rate:{key}"], [limit, _ms(window_s), member])
        if got is None:
            return self._local.hit(key, limit=limit, window_s=window_s)
        allowed, wait_ms = int(got[0]), int(got[1])
        return RateVerdict(allowed == 1, wait_ms / 1000.0)

    def spent(self, key: str, *, window_s: float) -> float:
        got = self._run(self._spend, [f"{self._ns}:gw:spend:{key}"], [_ms(window_s), 0])
        if got is None:
            return self._local.spent(key, window_s=window_s)
        return float(got)

    def spend(self, key: str, cost_usd: float, *, window_s: float) -> None:
        if cost_usd <= 0:
            return
        self._local.spend(key, cost_usd, window_s=window_s)
        self._run(self._spend, [f"{self._ns}:gw:spend:{key}"], [_ms(window_s), repr(cost_usd)])

    def close(self) -> None:
        self._redis.close()
