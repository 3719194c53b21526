"""Routing state shared on Redis (``state = { backend = "redis", url = ..., namespace = ... }``).

Why redis-py's *sync* client, called inline: the decisions that need an atomic shared answer
(take the probe ticket, check-and-reserve budget) are synchronous steps of the executor, with
no ``await`` between check and claim, and the in-memory path must gain no awaits. On
loopback a round trip costs ~0.1 ms, about what a hop to a worker thread costs; every call is
bounded by ``timeout_s`` (50 ms by default), and after one failure Redis is left alone for
``retry_s``, so an outage stalls the loop at most once per ``retry_s``. Reads go through a
local cache of ``cache_s`` (a few hundred ms), so most decisions do not touch Redis at all.

Keys (all under ``NAMESPACE:``, every one with a TTL):

- ``cb:MODEL:fail`` failures in the current window, ``cb:MODEL:trip`` the breaker is open or
  half-open, ``cb:MODEL:open`` its cooldown, ``cb:MODEL:probe`` the one probe ticket
  (``SET NX PX``: a crashed prober's ticket expires after ``probe_ttl_s``);
- ``cool:MODEL`` a Retry-After cooldown; ``host:HOST`` a reachability mark;
- ``budget:spent`` (money per time bucket), ``budget:res`` / ``budget:exp`` (reservations in
  flight and when each expires: a crashed process's reservation is dropped after
  ``reservation_ttl_s``), changed only by Lua scripts, so reserve/settle/release are atomic;
- ``lat:MODEL`` merged latency estimates (EWMA whose old value decays with age).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from genrouter.config import StateConfig, redact_url
from genrouter.state import CircuitFacts, LatencyFacts

__all__ = ["RedisBackend"]

logger = logging.getLogger("genrouter")

_BUCKETS = 64  # budget buckets per window (as the local Budget)
_TRIP_TTL_S = 3600.0  # a tripped breaker nobody probes is forgotten after this
_LATENCY_TTL_S = 3600.0
_LATENCY_TAU_S = 300.0  # an estimate this old weighs 1/e of a fresh one
_ALPHA = 0.3

_FAILURE = """
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

# KEYS: trip, open, probe. 1 = ticket taken, 0 = blocked, 2 = the breaker is closed.
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 2 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[1]) then return 1 end
return 0
"""

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: spent, res, exp. ARGV: window_ms. Drops expired reservations and old buckets.
_TIDY = (
    _NOW_MS
    + """
local window = tonumber(ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, rid in ipairs(dead) do redis.call('HDEL', KEYS[2], rid) end
if #dead > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
local bucket = math.floor(now * """
    + str(_BUCKETS)
    + """ / window)
local oldest = bucket - """
    + str(_BUCKETS)
    + """
local spent = 0
local rows = redis.call('HGETALL', KEYS[1])
for i = 1, #rows, 2 do
  if tonumber(rows[i]) < oldest then redis.call('HDEL', KEYS[1], rows[i])
  else spent = spent + tonumber(rows[i + 1]) end
end
local reserved = 0
local held = redis.call('HVALS', KEYS[2])
for _, v in ipairs(held) do reserved = reserved + tonumber(v) end
"""
)

_TOTALS = _TIDY + "return {tostring(spent), tostring(reserved)}"

# ARGV: window_ms, rid, amount, limit, ttl_ms
_RESERVE = (
    _TIDY
    + """
local amount = tonumber(ARGV[3])
if amount > 0 and spent + reserved + amount > tonumber(ARGV[4]) then
  return {0, tostring(spent), tostring(reserved)}
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return {1, tostring(spent), tostring(reserved + amount)}
"""
)

# ARGV: window_ms, rid, cost
_SETTLE = (
    _NOW_MS
    + """
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
local cost = tonumber(ARGV[3])
if cost > 0 then
  local bucket = math.floor(now * """
    + str(_BUCKETS)
    + """ / tonumber(ARGV[1]))
  redis.call('HINCRBYFLOAT', KEYS[1], tostring(bucket), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.floor(tonumber(ARGV[1]) * 2))
end
return 1
"""
)

# KEYS: lat. ARGV: ttft (or ''), output tokens, tokens/s (or ''), alpha, tau_ms, ttl_ms
_LATENCY = (
    _NOW_MS
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
return 1
"""
)


def _ms(seconds: float) -> int:
    return max(math.ceil(seconds * 1000), 1)


class RedisBackend:
    """:class:`~genrouter.state.StateBackend` on Redis, with a local read cache and a
    bounded fallback to local state when Redis is slow or down."""

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
        self._cache: dict[str, tuple[float, Any]] = {}
        self._latency_sent: dict[str, float] = {}
        self._down_until = 0.0
        self._down_logged = False
        self._lock = threading.Lock()
        r = self._redis
        self._failure = r.register_script(_FAILURE)
        self._claim = r.register_script(_CLAIM)
        self._totals = r.register_script(_TOTALS)
        self._reserve = r.register_script(_RESERVE)
        self._settle = r.register_script(_SETTLE)
        self._latency = r.register_script(_LATENCY)

    def __repr__(self) -> str:
        return f"RedisBackend({self._where!r}, namespace={self._ns!r})"

    # -- plumbing ---------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return ":".join((self._ns, *parts))

    def _run(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        """*call* on Redis, or ``None`` while it is down (logged once per outage)."""
        if self._down_until and time.monotonic() < self._down_until:
            return None
        try:
            result = call(*args, **kwargs)
        except (redis.RedisError, OSError) as exc:
            with self._lock:
                self._down_until = time.monotonic() + self._config.retry_s
                self._cache.clear()
                if not self._down_logged:
                    self._down_logged = True
                    logger.warning(
                        "genrouter: shared state at %s unavailable (%s); using this process's "
                        "local state, retrying in %gs",
                        self._where,
                        type(exc).__name__,
                        self._config.retry_s,
                    )
            return None
        if self._down_logged:
            with self._lock:
                if self._down_logged:
                    self._down_logged = False
                    self._down_until = 0.0
                    logger.info("genrouter: shared state at %s reachable again", self._where)
        return result

    def _cached(self, key: str, fetch: Any) -> tuple[float, Any] | None:
        """``(age in seconds, value)`` of a cached read, fetching it when stale."""
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self._config.cache_s:
            return now - hit[0], hit[1]
        value = self._run(fetch)
        if value is None:
            return None
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[key] = (now, value)
        return 0.0, value

    def _forget(self, key: str) -> None:
        self._cache.pop(key, None)

    def note(self) -> str | None:
        if self._down_logged:
            return f"state: shared state at {self._where} unavailable; decided on local state"
        return None

    def close(self) -> None:
        self._redis.close()

    # -- circuit breakers -------------------------------------------------------------------

    def _cb(self, model_id: str) -> tuple[str, str, str, str]:
        return (
            self._key("cb", model_id, "fail"),
            self._key("cb", model_id, "trip"),
            self._key("cb", model_id, "open"),
            self._key("cb", model_id, "probe"),
        )

    def circuit(self, model_id: str) -> CircuitFacts | None:
        fail, trip, open_, probe = self._cb(model_id)

        def fetch() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            pipe.get(fail)
            pipe.exists(trip)
            pipe.pttl(open_)
            pipe.exists(probe)
            return pipe.execute()

        got = self._cached("cb:" + model_id, fetch)
        if got is None:
            return None
        age, (failures, tripped, open_ms, probing) = got
        open_left = max(open_ms / 1000.0 - age, 0.0) if open_ms > 0 else 0.0
        return CircuitFacts(bool(tripped), open_left, bool(probing), int(failures or 0))

    def circuit_failure(
        self, model_id: str, *, threshold: int, window_s: float, cooldown_s: float
    ) -> None:
        fail, trip, open_, _ = self._cb(model_id)
        keys = [fail, trip, open_]
        self._run(
            self._failure, keys, [threshold, _ms(window_s), _ms(cooldown_s), _ms(_TRIP_TTL_S)]
        )
        self._forget("cb:" + model_id)

    def circuit_success(self, model_id: str) -> None:
        facts = self.circuit(model_id)
        if facts is not None and facts.failures:
            self._run(self._redis.delete, self._cb(model_id)[0])
            self._forget("cb:" + model_id)

    def claim_probe(self, model_id: str) -> bool | None:
        _, trip, open_, probe = self._cb(model_id)
        got = self._run(self._claim, [trip, open_, probe], [_ms(self._config.probe_ttl_s)])
        self._forget("cb:" + model_id)
        if got is None:
            return None
        if int(got) == 2:
            return None  # closed everywhere: the local breaker decides
        return int(got) == 1

    def probe_outcome(self, model_id: str, *, ok: bool, cooldown_s: float) -> None:
        fail, trip, open_, probe = self._cb(model_id)
        pipe = self._redis.pipeline(transaction=True)
        if ok:
            pipe.delete(fail, trip, open_, probe)
        else:
            pipe.set(trip, "1", px=_ms(_TRIP_TTL_S))
            pipe.set(open_, "1", px=_ms(cooldown_s))
            pipe.delete(probe)
        self._run(pipe.execute)
        self._forget("cb:" + model_id)

    def release_probe(self, model_id: str) -> None:
        self._run(self._redis.delete, self._cb(model_id)[3])
        self._forget("cb:" + model_id)

    # -- cooldowns and reachability ---------------------------------------------------------

    def _value_and_ttl(self, key: str) -> tuple[float, list[Any]] | None:
        """``(age of the cached reading, [value, ttl in ms])`` for *key*, through the cache."""

        def fetch() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            pipe.get(key)
            pipe.pttl(key)
            return pipe.execute()

        return self._cached(key, fetch)

    def cooldown(self, model_id: str) -> tuple[float, float] | None:
        key = self._key("cool", model_id)
        got = self._value_and_ttl(key)
        if got is None:
            return None
        age, (asked, left_ms) = got
        if asked is None or left_ms <= 0:
            return None
        left = left_ms / 1000.0 - age
        return (left, float(asked)) if left > 0 else None

    def set_cooldown(self, model_id: str, retry_after: float) -> None:
        key = self._key("cool", model_id)
        known = self.cooldown(model_id)
        if known is not None and known[0] >= retry_after:
            return
        self._run(self._redis.set, key, repr(float(retry_after)), px=_ms(retry_after))
        self._forget(key)

    def host_down(self, host: str) -> float | None:
        key = self._key("host", host)
        got = self._value_and_ttl(key)
        if got is None:
            return None
        age, (window, left_ms) = got
        if window is None or left_ms <= 0 or left_ms / 1000.0 - age <= 0:
            return None
        return max(float(window) - float(left_ms) / 1000.0 + age, 0.0)

    def mark_host(self, host: str, *, down_for_s: float | None) -> None:
        key = self._key("host", host)
        if down_for_s is None:
            if self.host_down(host) is not None:
                self._run(self._redis.delete, key)
                self._forget(key)
        else:
            self._run(self._redis.set, key, repr(float(down_for_s)), px=_ms(down_for_s))
            self._forget(key)

    # -- budget -----------------------------------------------------------------------------

    def _budget_keys(self) -> list[str]:
        return [
            self._key("budget", "spent"),
            self._key("budget", "res"),
            self._key("budget", "exp"),
        ]

    def reserve(self, rid: str, amount: float, *, limit_usd: float, window_s: float) -> bool | None:
        args = [
            _ms(window_s),
            rid,
            repr(amount),
            repr(limit_usd),
            _ms(self._config.reservation_ttl_s),
        ]
        got = self._run(self._reserve, self._budget_keys(), args)
        if got is None:
            return None
        # The script's totals are the freshest read there is: cache them for routing.
        self._cache["budget"] = (time.monotonic(), [got[1], got[2]])
        return int(got[0]) == 1

    def settle(self, rid: str, cost: float, *, window_s: float) -> None:
        # The cached totals may trail this by up to cache_s; reserve is the atomic check.
        self._run(self._settle, self._budget_keys(), [_ms(window_s), rid, repr(max(cost, 0.0))])

    def release(self, rid: str) -> None:
        keys = self._budget_keys()
        pipe = self._redis.pipeline(transaction=True)
        pipe.hdel(keys[1], rid)
        pipe.zrem(keys[2], rid)
        self._run(pipe.execute)
        self._forget("budget")

    def budget_totals(self, window_s: float) -> tuple[float, float] | None:
        got = self._cached("budget", lambda: self._totals(self._budget_keys(), [_ms(window_s)]))
        if got is None:
            return None
        spent, reserved = got[1]
        return float(spent), float(reserved)

    # -- latency ----------------------------------------------------------------------------

    def latency(self, model_id: str) -> LatencyFacts | None:
        key = self._key("lat", model_id)
        got = self._cached(key, lambda: self._redis.hgetall(key))
        if got is None or not got[1]:
            return None
        row = {k.decode(): v.decode() for k, v in got[1].items()}

        def num(name: str) -> float | None:
            return float(row[name]) if name in row else None

        return LatencyFacts(num("ttft"), num("tps"), num("out"), int(row.get("n", "0")))

    def observe_latency(
        self, model_id: str, ttft_ms: float | None, output_tokens: int, tokens_per_s: float | None
    ) -> None:
        # Sampled: at most one observation per model per cache_s goes to Redis (the local
        # EWMA has every one), so a busy process adds no round trip to most requests.
        key = self._key("lat", model_id)
        now = time.monotonic()
        if now - self._latency_sent.get(model_id, -math.inf) < self._config.cache_s:
            return
        if len(self._latency_sent) > 4096:
            self._latency_sent.clear()
        self._latency_sent[model_id] = now
        args = [
            "" if ttft_ms is None else repr(float(ttft_ms)),
            output_tokens,
            "" if tokens_per_s is None else repr(float(tokens_per_s)),
            _ALPHA,
            _ms(_LATENCY_TAU_S),
            _ms(_LATENCY_TTL_S),
        ]
        self._run(self._latency, [key], args)
