"""Routing state shared on Redis (``state = { backend = "redis", url = ..., namespace = ... }``).

The request path does not wait on Redis. Every Redis call runs on one I/O thread of this
backend, on redis-py's asyncio client; the routing decisions stay synchronous and read the
local cache, which that thread keeps fresh (every fact read in the last seconds is re-read
in one pipelined round trip each ``cache_s / 2``). Outcomes (cooldowns, marks, latency,
spend) are queued and sent in the background; whatever is queued together goes in one
pipeline, in order. A few rare steps wait, each at most ``4 * timeout_s + 50 ms``: the
first read of a fact (on the planner's worker thread), taking a breaker's probe ticket
(``SET NX PX``, once per cooldown), counting a failure, and topping up the budget lease
when a call does not fit what this process holds. Why this shape, with the numbers, is in
docs/state.md ("Which Redis client").

Budget: a process *leases* a slice of what is left (at most 1/8 of the free money and 32
calls' worth) and reserves calls from it locally; spend is sent every ``_FLUSH_S`` and the
unused part is given back when idle. Redis holds ``spent + every lease <= limit`` at every
grant, so the shared limit is never overspent while reservations cover the calls.

Keys (all under ``NAMESPACE:``, every one with a TTL):

- ``cb:MODEL:fail`` failures in the current window, ``cb:MODEL:trip`` the breaker is open or
  half-open, ``cb:MODEL:open`` its cooldown, ``cb:MODEL:probe`` the one probe ticket;
- ``cool:MODEL`` a Retry-After cooldown; ``host:HOST`` a reachability mark;
- ``budget:spent`` (money per time bucket), ``budget:res`` / ``budget:exp`` (each process's
  lease and when it expires: a crashed process's lease is dropped after
  ``reservation_ttl_s``), changed only by one Lua script;
- ``lat:MODEL`` merged latency estimates (EWMA whose old value decays with age).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from genrouter.config import StateConfig, redact_url
from genrouter.state import CircuitFacts, LatencyFacts
from genrouter.state._lease import KEEP_S, LEASE_CALLS, LEASE_SHARE, Lease
from genrouter.state._redis_io import Build, IOThread, Job, Parse

__all__ = ["RedisBackend"]

logger = logging.getLogger("genrouter")

_TRIP_TTL_S = 3600.0  # a tripped breaker nobody probes is forgotten after this
_LATENCY_TTL_S = 3600.0
_LATENCY_TAU_S = 300.0  # an estimate this old weighs 1/e of a fresh one
_ALPHA = 0.3
_STALE_S = 1.0  # on the loop, a polled fact this much past cache_s is still used
_MAX_KEYS = 4096
_GRANT_TRIES = 3  # a reservation asks Redis at most this often before it is refused


def _ms(seconds: float) -> int:
    return max(math.ceil(seconds * 1000), 1)


def _on_loop() -> bool:
    """Whether this thread runs an event loop (then it must not wait on Redis)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _latency_facts(raw: dict[bytes, bytes]) -> LatencyFacts:
    """A ``lat:MODEL`` hash as :class:`LatencyFacts` (``samples == 0``: nothing known)."""
    row = {k.decode(): v.decode() for k, v in raw.items()}

    def num(name: str) -> float | None:
        return float(row[name]) if name in row else None

    return LatencyFacts(num("ttft"), num("tps"), num("out"), int(row.get("n", "0")))


class RedisBackend:
    """:class:`~genrouter.state.StateBackend` on Redis, with a local read cache and a
    bounded fallback to local state when Redis is slow or down."""

    def __init__(self, config: StateConfig) -> None:
        assert config.url is not None
        self._config = config
        self._where = redact_url(config.url)
        self._ns = config.namespace
        self._bound_s = config.timeout_s * 4 + 0.05  # the longest any Redis step may take
        self._io: IOThread | None = None
        self._shas: list[str] = []
        self._lock = threading.Lock()
        self._closed = False
        self._closing = False  # close() began: budget jobs from now on only give back
        # Reads: key -> (monotonic time read, value); what to re-read, and when last wanted.
        self._cache: dict[str, tuple[float, Any]] = {}
        self._wanted: dict[str, float] = {}  # key -> when a decision last read it
        self._fetchers: dict[str, tuple[Build, Parse]] = {}  # key -> how to read it
        self._polling: set[str] = set()
        self._latency_sent: dict[str, float] = {}
        self._down_until = 0.0
        self._down_logged = False
        self._budget = Lease(f"lease:{uuid.uuid4().hex}")
        self._waits = 0  # how often a caller waited for Redis (bench/state.py reports it)

    def __repr__(self) -> str:
        return f"RedisBackend({self._where!r}, namespace={self._ns!r})"

    @property
    def namespace(self) -> str:
        """The key prefix (``NAMESPACE:``) every key of this backend starts with."""
        return self._ns

    # -- plumbing ---------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return ":".join((self._ns, *parts))

    def _down(self) -> bool:
        return bool(self._down_until) and time.monotonic() < self._down_until

    def _mark_down(self, exc: BaseException) -> None:
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

    def _mark_up(self) -> None:
        if self._down_logged:
            with self._lock:
                if self._down_logged:
                    self._down_logged = False
                    self._down_until = 0.0
                    logger.info("genrouter: shared state at %s reachable again", self._where)

    def _ensure_io(self) -> IOThread:
        io = self._io
        if io is None or io.pid != os.getpid():  # none yet, or this is a forked child
            with self._lock:
                io = self._io
                if io is None or io.pid != os.getpid():
                    if io is not None:
                        # A forked child: its parent's lease and cache are not its own.
                        self._budget = Lease(f"lease:{uuid.uuid4().hex}")
                        self._cache.clear()
                    io = self._io = IOThread(self)
        return io

    def _submit(
        self,
        build: Build,
        parse: Parse,
        *,
        failed: Callable[[], None] | None = None,
        abandoned: Callable[[Any], None] | None = None,
        serial: bool = False,
    ) -> Future[Any] | None:
        """Queue a job for the I/O thread; ``None`` while Redis is down or after close."""
        if self._closed or self._down():
            return None
        future: Future[Any] = Future()
        self._ensure_io().submit(Job(build, parse, future, failed, abandoned, serial))
        return future

    def _wait(self, future: Future[Any] | None) -> Any:
        """The job's answer, or ``None`` when it has none within the bound (decide locally)."""
        if future is None:
            return None
        self._waits += 1
        if self._io is not None:
            self._io.wake()
        try:
            return future.result(timeout=self._bound_s)
        except TimeoutError:
            if future.cancel():
                return None
            return future.result()

    def _sha(self, index: int) -> str:
        return self._shas[index]

    def _script(self, pipe: Any, index: int, keys: list[str], args: list[Any]) -> None:
        pipe.evalsha(self._sha(index), len(keys), *keys, *args)

    def _store(self, key: str, parse: Parse) -> Parse:
        def stored(replies: list[Any]) -> Any:
            value = parse(replies)
            if len(self._cache) > _MAX_KEYS:
                self._cache.clear()
            self._cache[key] = (time.monotonic(), value)
            return value

        return stored

    def _fetcher(self, key: str, kind: str, arg: str) -> tuple[Build, Parse]:
        """How to read *key* (made once per key: the hot path builds no closures)."""
        known = self._fetchers.get(key)
        if known is None:
            if len(self._fetchers) > _MAX_KEYS:
                self._fetchers.clear()
            if kind == "cb":
                known = self._cb_read(arg)
            elif kind == "lat":
                known = (lambda pipe: pipe.hgetall(arg), lambda r: _latency_facts(r[0]))
            else:
                known = (lambda pipe: pipe.get(arg).pttl(arg), list)
            self._fetchers[key] = known
        return known

    def _read(self, key: str, kind: str, arg: str) -> tuple[float, Any] | None:
        """``(age in seconds, value)`` of a fact, through the cache the I/O thread keeps
        fresh; ``None``: no shared answer now (the caller decides on local state)."""
        now = time.monotonic()
        if len(self._wanted) > _MAX_KEYS:
            self._wanted.clear()
        self._wanted[key] = now
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self._config.cache_s:
            return now - hit[0], hit[1]
        build, parse = self._fetcher(key, kind, arg)
        if self._down():
            return None
        if not _on_loop():  # a worker thread or plain sync code: waiting blocks no loop
            future = self._submit(build, self._store(key, parse))
            value = self._wait(future)
            return None if value is None else (0.0, value)
        if hit is not None and now - hit[0] < self._config.cache_s + _STALE_S:
            return now - hit[0], hit[1]  # the poller is re-reading it
        if key not in self._polling:
            self._polling.add(key)
            self._submit(build, self._store(key, parse))
        return None

    def _housekeeping(self) -> list[Job]:
        """The I/O thread's periodic jobs: re-read facts in use, and the budget lease's."""
        jobs: list[Job] = []
        if self._down():
            return jobs
        now = time.monotonic()
        due = now - self._config.cache_s / 2
        keep = now - KEEP_S
        builds: list[Build] = []
        parses: list[tuple[str, Parse, int]] = []
        for key, wanted_at in list(self._wanted.items()):
            if wanted_at < keep:
                self._wanted.pop(key, None)
                continue
            hit = self._cache.get(key)
            fetcher = self._fetchers.get(key)
            if (hit is None or hit[0] <= due) and fetcher is not None:
                builds.append(fetcher[0])
                parses.append((key, fetcher[1], 0))
        if builds:
            jobs.append(self._poll_job(builds, parses))
        jobs.extend(self._budget_housekeeping(now))
        return jobs

    def _poll_job(self, builds: list[Build], parses: list[tuple[str, Parse, int]]) -> Job:
        sizes: list[int] = []

        def build(pipe: Any) -> None:
            sizes.clear()
            for one in builds:
                start = len(pipe)
                one(pipe)
                sizes.append(len(pipe) - start)

        def parse(replies: list[Any]) -> bool:
            at = 0
            for (key, one, _), size in zip(parses, sizes, strict=True):
                self._store(key, one)(replies[at : at + size])
                self._polling.discard(key)
                at += size
            return True

        return Job(build, parse, Future())

    def note(self) -> str | None:
        if self._down_logged:
            return f"state: shared state at {self._where} unavailable; decided on local state"
        return None

    def flush(self) -> None:
        """Send everything queued (spend included) and wait for it, bounded (tests, close)."""
        if self._io is None or self._closed:
            return
        self._wait(self._budget_job(need=0.0, want=0.0, give_back=False))

    def close(self) -> None:
        """Give back the lease, send unsent spend, stop the I/O thread (bounded)."""
        if self._closed:
            return
        # From here on no budget job asks for money: a top-up queued before (or a
        # housekeeping one queued while this waits) would otherwise lease money again after
        # the give-back, held on Redis by a process that is gone until reservation_ttl_s.
        self._closing = True
        if self._io is not None:
            self._wait(self._budget_job(need=0.0, want=0.0, give_back=True))
        self._closed = True
        io, self._io = self._io, None
        if io is not None:
            io.stop(self._bound_s * 2)

    # -- circuit breakers -------------------------------------------------------------------

    def _cb(self, model_id: str) -> tuple[str, str, str, str]:
        return (
            self._key("cb", model_id, "fail"),
            self._key("cb", model_id, "trip"),
            self._key("cb", model_id, "open"),
            self._key("cb", model_id, "probe"),
        )

    def _cb_read(self, model_id: str) -> tuple[Build, Parse]:
        fail, trip, open_, probe = self._cb(model_id)

        def build(pipe: Any) -> None:
            pipe.get(fail)
            pipe.exists(trip)
            pipe.pttl(open_)
            pipe.exists(probe)

        return build, list

    def _cb_after(self, model_id: str, write: Build) -> Future[Any] | None:
        """Send *write*, then re-read the breaker in the same pipeline."""
        read, parse = self._cb_read(model_id)

        def build(pipe: Any) -> None:
            start = len(pipe)
            write(pipe)
            skip.append(len(pipe) - start)
            read(pipe)

        skip: list[int] = []
        return self._submit(build, self._store("cb:" + model_id, lambda r: parse(r[skip[-1] :])))

    def circuit(self, model_id: str) -> CircuitFacts | None:
        got = self._read("cb:" + model_id, "cb", model_id)
        if got is None:
            return None
        age, (failures, tripped, open_ms, probing) = got
        open_left = max(open_ms / 1000.0 - age, 0.0) if open_ms > 0 else 0.0
        return CircuitFacts(bool(tripped), open_left, bool(probing), int(failures or 0))

    def circuit_failure(
        self, model_id: str, *, threshold: int, window_s: float, cooldown_s: float
    ) -> None:
        fail, trip, open_, _ = self._cb(model_id)
        args = [threshold, _ms(window_s), _ms(cooldown_s), _ms(_TRIP_TTL_S)]
        # Waited for (bounded): this process's next call must see the breaker this failure
        # may have opened. Only failed calls wait, and only until the breaker opens.
        self._wait(
            self._cb_after(model_id, lambda pipe: self._script(pipe, 0, [fail, trip, open_], args))
        )

    def circuit_success(self, model_id: str) -> None:
        hit = self._cache.get("cb:" + model_id)
        if hit is not None and hit[1][0]:  # failures counted: clear them
            self._cb_after(model_id, lambda pipe: pipe.delete(self._cb(model_id)[0]))

    def claim_probe(self, model_id: str) -> bool | None:
        facts = self.circuit(model_id)
        if facts is not None and facts.probing:
            return False  # another process holds the ticket (no round trip)
        _, trip, open_, probe = self._cb(model_id)
        read, parse = self._cb_read(model_id)
        ttl = _ms(self._config.probe_ttl_s)

        def build(pipe: Any) -> None:
            self._script(pipe, 1, [trip, open_, probe], [ttl])
            read(pipe)

        def claimed(replies: list[Any]) -> int:
            self._store("cb:" + model_id, parse)(replies[1:])
            return int(replies[0])

        def abandoned(got: int) -> None:
            if got == 1:  # taken after the waiter gave up: give it back at once
                self.release_probe(model_id)

        got = self._wait(self._submit(build, claimed, abandoned=abandoned))
        if got is None or got == 2:
            return None  # no answer, or closed everywhere: the local breaker decides
        return bool(got == 1)

    def probe_outcome(self, model_id: str, *, ok: bool, cooldown_s: float) -> None:
        fail, trip, open_, probe = self._cb(model_id)

        def write(pipe: Any) -> None:
            if ok:
                pipe.delete(fail, trip, open_, probe)
            else:
                pipe.set(trip, "1", px=_ms(_TRIP_TTL_S))
                pipe.set(open_, "1", px=_ms(cooldown_s))
                pipe.delete(probe)

        # What this process knows now, until the re-read lands.
        self._cache["cb:" + model_id] = (
            time.monotonic(),
            [None, 0, -2, 0] if ok else [None, 1, _ms(cooldown_s), 0],
        )
        self._cb_after(model_id, write)

    def release_probe(self, model_id: str) -> None:
        self._cb_after(model_id, lambda pipe: pipe.delete(self._cb(model_id)[3]))

    # -- cooldowns and reachability ---------------------------------------------------------

    def _value_and_ttl(self, key: str) -> tuple[float, list[Any]] | None:
        """``(age of the cached reading, [value, ttl in ms])`` for *key*, through the cache."""
        return self._read(key, "ttl", key)

    def _set_for(self, key: str, value: float, seconds: float) -> None:
        self._cache[key] = (time.monotonic(), [repr(value).encode(), _ms(seconds)])
        self._submit(lambda pipe: pipe.set(key, repr(value), px=_ms(seconds)), list)

    def cooldown(self, model_id: str) -> tuple[float, float] | None:
        got = self._value_and_ttl(self._key("cool", model_id))
        if got is None:
            return None
        age, (asked, left_ms) = got
        if asked is None or left_ms <= 0:
            return None
        left = left_ms / 1000.0 - age
        return (left, float(asked)) if left > 0 else None

    def set_cooldown(self, model_id: str, retry_after: float) -> None:
        known = self.cooldown(model_id)
        if known is not None and known[0] >= retry_after:
            return
        self._set_for(self._key("cool", model_id), float(retry_after), retry_after)

    def host_down(self, host: str) -> float | None:
        got = self._value_and_ttl(self._key("host", host))
        if got is None:
            return None
        age, (window, left_ms) = got
        if window is None or left_ms <= 0 or left_ms / 1000.0 - age <= 0:
            return None
        return max(float(window) - float(left_ms) / 1000.0 + age, 0.0)

    def mark_host(self, host: str, *, down_for_s: float | None) -> None:
        key = self._key("host", host)
        if down_for_s is not None:
            self._set_for(key, float(down_for_s), down_for_s)
        elif self.host_down(host) is not None:
            self._cache[key] = (time.monotonic(), [None, -2])
            self._submit(lambda pipe: pipe.delete(key), list)

    # -- budget: a lease of the shared limit, spent locally ---------------------------------

    def _budget_job(self, *, need: float, want: float, give_back: bool) -> Future[Any] | None:
        """Send unsent spend, set this lease to what is held (plus what is still free in it
        unless *give_back*), and grant at least *need* more (``-1``: does not fit) up to
        *want*. The answer is the amount granted."""
        lease = self._budget
        keys = [self._key("budget", "spent"), self._key("budget", "res")]
        keys.append(self._key("budget", "exp"))
        sent: list[float] = []

        def build(pipe: Any) -> None:
            with self._lock:
                spend = lease.take_spend()
                closing = self._closing
                if give_back or closing or time.monotonic() >= lease.alive_until:
                    lease.left = 0.0  # given back, or already dropped on Redis
                sent.append(spend)
                keep = lease.keep()
                at_least = max(need - lease.left, 0.0) if need > 0 and not closing else 0.0
                up_to = max(want - lease.left, at_least) if want > 0 and not closing else at_least
                limit, window = lease.limit_usd, lease.window_s
            args = [_ms(window), lease.id, repr(spend), repr(keep), repr(at_least), repr(up_to)]
            args += [repr(limit), _ms(self._config.reservation_ttl_s), repr(LEASE_SHARE)]
            self._script(pipe, 2, keys, args)

        def parse(replies: list[Any]) -> float:
            granted, spent, others = (float(x) for x in replies[0])
            with self._lock:
                ttl = self._config.reservation_ttl_s
                lease.settled(sent[-1], granted, spent, others, ttl, asked=want > 0)
            return granted

        def failed() -> None:
            with self._lock:
                lease.unsent_back(sent[-1] if sent else 0.0)

        # Serial: this build reads the lease an earlier budget job's grant changes.
        return self._submit(build, parse, failed=failed, serial=True)

    def _budget_housekeeping(self, now: float) -> list[Job]:
        lease = self._budget
        if self._closing:
            return []
        with self._lock:
            action = lease.due(now, self._config.cache_s, self._config.reservation_ttl_s)
        if action is None:
            return []
        need, want, give_back = action
        future = self._budget_job(need=need, want=want, give_back=give_back)
        if future is not None:
            future.add_done_callback(lambda _: lease.done_busy())
        else:
            lease.done_busy()
        return []  # _budget_job queued it already

    def reserve(self, rid: str, amount: float, *, limit_usd: float, window_s: float) -> bool | None:
        if self._down():
            return None
        lease = self._budget
        with self._lock:
            lease.limit_usd, lease.window_s = limit_usd, window_s
            if lease.take(rid, amount, time.monotonic()):
                return True
        # Not enough leased: ask Redis for more now (the one budget step that waits).
        wanted = amount * LEASE_CALLS
        with self._lock:
            lease.claiming += 1  # housekeeping gives nothing back until this call took its part
        try:
            for _ in range(_GRANT_TRIES):
                job = self._budget_job(need=amount, want=wanted, give_back=False)
                granted = self._wait(job)
                if granted is None:
                    return None
                with self._lock:
                    if lease.take(rid, amount, time.monotonic()):
                        return True
                if granted < 0:
                    return False  # Redis has not this much free
                # Granted, but gone before this thread took it: another thread of this
                # process took it first, or this thread ran so late that the lease passed
                # its local expiry (0.9 * reservation_ttl_s). Ask again, do not refuse.
            return False
        finally:
            with self._lock:
                lease.claiming -= 1

    def settle(self, rid: str, cost: float, *, window_s: float) -> None:
        with self._lock:
            self._budget.spend(rid, cost)

    def release(self, rid: str) -> None:
        with self._lock:
            self._budget.spend(rid, 0.0)

    def budget_totals(self, window_s: float) -> tuple[float, float] | None:
        lease = self._budget
        now = time.monotonic()
        with self._lock:
            lease.window_s = window_s
            lease.totals_wanted = now
            totals = lease.totals(now, self._config.cache_s, 0.0)
        if totals is not None or self._down():
            return totals
        if not _on_loop():
            self._wait(self._budget_job(need=0.0, want=0.0, give_back=False))
            with self._lock:
                return lease.totals(time.monotonic(), math.inf, 0.0)
        with self._lock:
            return lease.totals(now, self._config.cache_s, _STALE_S)

    # -- latency ----------------------------------------------------------------------------

    def latency(self, model_id: str) -> LatencyFacts | None:
        key = self._key("lat", model_id)
        got = self._read(key, "lat", key)
        if got is None or not got[1].samples:
            return None
        facts: LatencyFacts = got[1]
        return facts

    def observe_latency(
        self, model_id: str, ttft_ms: float | None, output_tokens: int, tokens_per_s: float | None
    ) -> None:
        # Sampled: at most one observation per model per cache_s goes to Redis (the local
        # EWMA has every one). The script answers with the merged row, which is cached.
        key = self._key("lat", model_id)
        now = time.monotonic()
        if now - self._latency_sent.get(model_id, -math.inf) < self._config.cache_s:
            return
        if len(self._latency_sent) > _MAX_KEYS:
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

        def parse(replies: list[Any]) -> LatencyFacts:
            flat = replies[0]
            return _latency_facts(dict(zip(flat[::2], flat[1::2], strict=True)))

        self._submit(lambda pipe: self._script(pipe, 3, [key], args), self._store(key, parse))
