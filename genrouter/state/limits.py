"""Per-key rate limits and spend: the :class:`KeyLimits` seam, and the in-memory one.

The gateway (``genrouter serve``) gives every API key a sliding-window request limit and a
budget. Where those counts live follows the ``state`` table: :class:`MemoryLimits` for one
process, :class:`~genrouter.state.redis_limits.RedisLimits` to share them between processes.
Like :class:`~genrouter.state.StateBackend`, every method is plain data in and out and
synchronous (a Redis call is one atomic script, bounded by ``timeout_s``).

*key* is a short id naming a gateway key (never the key itself); callers keep the set of keys
bounded (they come from the configuration).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from genrouter.config import StateConfig

__all__ = ["BUCKETS", "KeyLimits", "MemoryLimits", "RateVerdict", "build_limits"]

#: Spend is summed per time bucket, this many per window (as the client's ``Budget``): spending
#: leaves the window at most 1/64 of it late, never early.
BUCKETS = 64


@dataclass(frozen=True, slots=True)
class RateVerdict:
    """Whether a request may go now; if not, how long until one may."""

    allowed: bool
    retry_after_s: float = 0.0


class KeyLimits(Protocol):
    """Request counts and spend per gateway key."""

    def hit(self, key: str, *, limit: int, window_s: float) -> RateVerdict:
        """Count one request against *limit* per *window_s* (sliding), if it fits."""
        ...

    def spent(self, key: str, *, window_s: float) -> float:
        """What *key* spent in the last *window_s* (USD)."""
        ...

    def spend(self, key: str, cost_usd: float, *, window_s: float) -> None:
        """Add *cost_usd* to *key*'s spend."""
        ...

    def close(self) -> None: ...


class MemoryLimits:
    """:class:`KeyLimits` for this process only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._spend: dict[str, dict[int, float]] = {}

    def hit(self, key: str, *, limit: int, window_s: float) -> RateVerdict:
        now = self._clock()
        times = self._hits.get(key)
        if times is None:
            times = self._hits[key] = deque()
        while times and times[0] <= now - window_s:
            times.popleft()
        if len(times) >= limit:
            return RateVerdict(False, max(times[0] + window_s - now, 0.001))
        times.append(now)
        return RateVerdict(True)

    def _buckets(self, key: str, window_s: float) -> tuple[dict[int, float], int]:
        bucket = math.floor(self._clock() * BUCKETS / window_s)
        spend = self._spend.setdefault(key, {})
        for old in [b for b in spend if b <= bucket - BUCKETS]:
            del spend[old]
        return spend, bucket

    def spent(self, key: str, *, window_s: float) -> float:
        spend, _ = self._buckets(key, window_s)
        return sum(spend.values())

    def spend(self, key: str, cost_usd: float, *, window_s: float) -> None:
        if cost_usd <= 0:
            return
        spend, bucket = self._buckets(key, window_s)
        spend[bucket] = spend.get(bucket, 0.0) + cost_usd

    def close(self) -> None:
        return None


def build_limits(config: StateConfig) -> KeyLimits:
    """The limits store *config* asks for: in memory, or on the same Redis as routing state."""
    if config.backend == "memory":
        return MemoryLimits()
    from genrouter.state.redis_limits import RedisLimits

    return RedisLimits(config)
