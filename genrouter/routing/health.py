"""What a client has learned about its models: latency, failures, reachability.

All of it lives on one client (never module-level), and every method takes ``now`` from the
caller's clock so tests can move time by hand.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from genrouter._lru import LRUDict
from genrouter.config import CircuitConfig, OfflineConfig
from genrouter.routing.calibration import PromptCalibration

if TYPE_CHECKING:
    from genrouter.state import StateBackend
    from genrouter.telemetry import HealthObserver

__all__ = [
    "CircuitBreaker",
    "Health",
    "LatencyStats",
    "Reachability",
    "SharedLatencyStats",
    "Ticket",
]

_EWMA_ALPHA = 0.3  # weight of the newest observation: recent enough to follow a provider's mood


@dataclass(slots=True)
class LatencyStats:
    """Exponentially weighted moving averages of one model's speed."""

    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    output_tokens: float | None = None
    samples: int = 0

    def observe(self, ttft_ms: float | None, output_tokens: int, generation_s: float) -> None:
        """Fold in one successful call: time to first token and generation speed."""
        self.samples += 1
        if ttft_ms is not None:
            self.ttft_ms = _ewma(self.ttft_ms, ttft_ms)
        if output_tokens > 0:
            self.output_tokens = _ewma(self.output_tokens, float(output_tokens))
            if generation_s > 0:
                self.tokens_per_s = _ewma(self.tokens_per_s, output_tokens / generation_s)


@dataclass(slots=True)
class SharedLatencyStats(LatencyStats):
    """:class:`LatencyStats` whose observations also go to a shared backend, and whose
    values are the merged estimates of every process after each observation."""

    shared: StateBackend | None = None
    model_id: str = ""

    def observe(self, ttft_ms: float | None, output_tokens: int, generation_s: float) -> None:
        LatencyStats.observe(self, ttft_ms, output_tokens, generation_s)
        if self.shared is None:
            return
        speed = output_tokens / generation_s if output_tokens > 0 and generation_s > 0 else None
        self.shared.observe_latency(self.model_id, ttft_ms, output_tokens, speed)
        merged = self.shared.latency(self.model_id)
        if merged is not None:
            self.ttft_ms = merged.ttft_ms if merged.ttft_ms is not None else self.ttft_ms
            self.tokens_per_s = merged.tokens_per_s or self.tokens_per_s
            self.output_tokens = merged.output_tokens or self.output_tokens


def _ewma(old: float | None, new: float) -> float:
    return new if old is None else old + _EWMA_ALPHA * (new - old)


Ticket = Literal["closed", "probe"]


@dataclass(slots=True)
class CircuitBreaker:
    """Closed → open after ``failure_threshold`` failures within ``window_s``; after
    ``cooldown_s`` it lets one probe through (half-open); the probe's outcome closes or reopens it.

    :meth:`acquire` hands out a ticket saying how the call got through, and only the probe's
    outcome moves an open breaker: a slow call admitted before the breaker opened cannot close
    it by finishing well, nor extend its cooldown by failing late.
    """

    config: CircuitConfig
    failures: deque[float] = field(default_factory=deque)
    opened_at: float | None = None
    probing: bool = False
    # With a shared backend its facts decide open/half-open/closed (local state is the
    # fallback while it has none); this breaker's outcomes are recorded there too.
    shared: StateBackend | None = None
    model_id: str = ""
    observer: HealthObserver | None = None  # logs and counts transitions (genrouter.telemetry)

    def _changed(self, state: str, reason: str) -> None:
        if self.observer is not None:
            self.observer.circuit(self.model_id, state, reason)

    def state(self, now: float) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"``."""
        if self.shared is not None:
            facts = self.shared.circuit(self.model_id)
            if facts is not None:
                if facts.open_left_s > 0:
                    return "open"
                return "half_open" if facts.tripped else "closed"
        if self.opened_at is None:
            return "closed"
        if now - self.opened_at < self.config.cooldown_s:
            return "open"
        return "half_open"

    def blocked_for(self, now: float) -> float | None:
        """Seconds until the breaker lets a call through, or ``None`` if it does now."""
        if self.shared is not None:
            facts = self.shared.circuit(self.model_id)
            if facts is not None:
                if facts.open_left_s > 0:
                    return facts.open_left_s
                return 0.0 if facts.tripped and facts.probing else None
        state = self.state(now)
        if state == "closed" or (state == "half_open" and not self.probing):
            return None
        assert self.opened_at is not None
        return max(self.opened_at + self.config.cooldown_s - now, 0.0)

    def acquire(self, now: float) -> Ticket | None:
        """Ask to send a call: ``"closed"``, ``"probe"`` (the one half-open call) or ``None``."""
        if self.shared is not None:
            facts = self.shared.circuit(self.model_id)
            if facts is not None:
                if facts.open_left_s > 0:
                    return None
                if facts.tripped:
                    claimed = self.shared.claim_probe(self.model_id)
                    if claimed is not None:  # one probe across every process
                        if claimed:
                            self._changed("half_open", "cooldown over; one probe let through")
                        return "probe" if claimed else None
                else:
                    return "closed"
        state = self.state(now)
        if state == "closed":
            return "closed"
        if state == "half_open" and not self.probing:
            self.probing = True
            self._changed("half_open", "cooldown over; one probe let through")
            return "probe"
        return None

    def record_success(self, ticket: Ticket = "closed") -> None:
        if self.shared is not None:
            if ticket == "probe":
                self.shared.probe_outcome(self.model_id, ok=True, cooldown_s=self.config.cooldown_s)
            else:
                self.shared.circuit_success(self.model_id)
        if ticket == "probe":
            self.opened_at, self.probing = None, False
            self.failures.clear()
            self._changed("closed", "the probe succeeded")
        elif self.opened_at is None:
            self.failures.clear()

    def record_failure(self, now: float, ticket: Ticket = "closed") -> None:
        if self.shared is not None:
            config = self.config
            if ticket == "probe":
                self.shared.probe_outcome(self.model_id, ok=False, cooldown_s=config.cooldown_s)
            else:
                self.shared.circuit_failure(
                    self.model_id,
                    threshold=config.failure_threshold,
                    window_s=config.window_s,
                    cooldown_s=config.cooldown_s,
                )
        if ticket == "probe":
            self.opened_at, self.probing = now, False  # the probe failed: cool down again
            self._changed("open", f"the probe failed; cooling down {self.config.cooldown_s:g}s")
            return
        if self.opened_at is not None:
            return  # already open; a late failure says nothing new
        self.failures.append(now)
        while self.failures and now - self.failures[0] > self.config.window_s:
            self.failures.popleft()
        if len(self.failures) >= self.config.failure_threshold:
            self.opened_at = now
            self.failures.clear()
            config = self.config
            self._changed(
                "open",
                f"{config.failure_threshold} failures within {config.window_s:g}s; "
                f"cooling down {config.cooldown_s:g}s",
            )

    def release(self, ticket: Ticket | None = "closed") -> None:
        """A call that got through ended without a verdict (cancelled, moved on)."""
        if ticket == "probe" and self.shared is not None:
            self.shared.release_probe(self.model_id)
        if ticket == "probe":
            self.probing = False


@dataclass(slots=True)
class Reachability:
    """Which hosts failed to connect recently, and whether the evidence says the network is down.

    This is the one place that knows the rule. A connect failure marks that provider's host
    (its ``host:port``; providers are mapped to hosts with :meth:`register`) unreachable for
    ``down_for_s``. The whole network is marked down only on evidence that covers it:
    network-level failures (DNS failing, "network unreachable", connect timeouts; a refused
    connection proves the network works) on at least two distinct hosts off this machine.
    When the interval passes, the next request tries again: that request is the probe, and a
    success clears the mark.
    """

    config: OfflineConfig
    provider_down_at: dict[str, float] = field(default_factory=dict)  # keyed by host
    network_down_at: float | None = None
    hosts: dict[str, str] = field(default_factory=dict)  # provider name -> host
    network_evidence: dict[str, float] = field(default_factory=dict)  # host -> last failure
    # Per-host marks are shared (a host down for one process is down for all); the network
    # verdict stays local: it is about this machine's network.
    shared: StateBackend | None = None
    observer: HealthObserver | None = None  # logs the offline switch (genrouter.telemetry)

    def quiet(self) -> bool:
        """Whether nothing is marked (the usual state): no host, no network, no evidence,
        and no shared marks to read. Then every question here has the answer "reachable"."""
        return (
            not self.provider_down_at
            and self.network_down_at is None
            and not self.network_evidence
            and self.shared is None
        )

    def register(self, provider: str, host: str) -> None:
        """Say which host *provider* talks to (providers sharing a host share its mark)."""
        self.hosts[provider] = host

    def host_of(self, provider: str) -> str:
        return self.hosts.get(provider, provider)

    def mark_unreachable(
        self, provider: str, now: float, *, whole_network: bool, network_level: bool = False
    ) -> None:
        """A connect to *provider* failed. *whole_network*: its host is off this machine;
        *network_level*: the failure was of a kind that a down network causes (DNS…)."""
        if not self.config.enabled:
            return
        host = self.host_of(provider)
        if self.observer is not None and host not in self.provider_down_at:
            self.observer.offline(
                host, True, f"a connect failed; skipped for {self.config.down_for_s:g}s"
            )
        self.provider_down_at[host] = now
        if self.shared is not None:
            self.shared.mark_host(host, down_for_s=self.config.down_for_s)
        if not (whole_network and network_level):
            return
        self.network_evidence[host] = now
        window = self.config.down_for_s
        recent = [h for h, at in self.network_evidence.items() if now - at < window]
        if len(recent) >= 2:
            if self.observer is not None and self.network_down_at is None:
                self.observer.offline(
                    "network",
                    True,
                    f"connects to {', '.join(sorted(recent))} failed; remote models are skipped "
                    f"for {window:g}s while a local one can answer",
                )
            self.network_down_at = now

    def mark_reachable(self, provider: str, *, whole_network: bool) -> None:
        if self.quiet():
            return  # nothing to clear
        host = self.host_of(provider)
        if self.provider_down_at.pop(host, None) is not None and self.observer is not None:
            self.observer.offline(host, False, "a call succeeded")
        if self.shared is not None:
            self.shared.mark_host(host, down_for_s=None)
        self.network_evidence.pop(host, None)
        if whole_network:
            if self.network_down_at is not None and self.observer is not None:
                self.observer.offline("network", False, f"{host} answered")
            self.network_down_at = None
            self.network_evidence.clear()

    def down_reason(
        self, provider: str, now: float, *, whole_network: bool, marked_after: float | None = None
    ) -> str | None:
        """Why calls to *provider* should be skipped now, or ``None``.

        With *marked_after*, only marks made at or after that time count.
        """
        if self.quiet():
            return None
        window = self.config.down_for_s
        floor = float("-inf") if marked_after is None else marked_after
        down = self.network_down_at
        if whole_network and down is not None and down >= floor:
            age = now - down
            if age < window:
                return (
                    f"offline: network marked down {age:.1f}s ago, connects to several hosts "
                    f"failed (probe in {window - age:.1f}s)"
                )
        host = self.host_of(provider)
        since = self.provider_down_at.get(host)
        if since is not None and since >= floor and now - since < window:
            age = now - since
            return f"offline: {host} unreachable {age:.1f}s ago (probe in {window - age:.1f}s)"
        if self.shared is not None:
            age_shared = self.shared.host_down(host)
            if age_shared is not None and now - age_shared >= floor and age_shared < window:
                return (
                    f"offline: {host} unreachable {age_shared:.1f}s ago, seen by another process "
                    f"(probe in {window - age_shared:.1f}s)"
                )
        return None


@dataclass(slots=True)
class Health:
    """One client's health knowledge, keyed by model id."""

    circuit_config: CircuitConfig
    offline_config: OfflineConfig
    # Bounded (least recently used first out): model ids may be ad-hoc names the caller picks.
    latency: dict[str, LatencyStats] = field(default_factory=LRUDict)
    circuits: dict[str, CircuitBreaker] = field(default_factory=LRUDict)
    reachability: Reachability = field(init=False)
    # How far prompt estimates were from reported counts, per model (bounded LRU).
    prompt_calibration: PromptCalibration = field(default_factory=PromptCalibration)
    # model id -> (until, on the client's clock; the Retry-After the server gave, seconds)
    cooldowns: dict[str, tuple[float, float]] = field(default_factory=dict)
    # Facts shared with other processes (docs/state.md); ``None``: this process only.
    shared: StateBackend | None = None
    # Logs and counts circuit transitions, cooldowns, the offline switch (genrouter.telemetry).
    observer: HealthObserver | None = None

    def __post_init__(self) -> None:
        self.reachability = Reachability(
            self.offline_config, shared=self.shared, observer=self.observer
        )

    def circuit(self, model_id: str) -> CircuitBreaker:
        breaker = self.circuits.get(model_id)
        if breaker is None:
            breaker = self.circuits[model_id] = CircuitBreaker(
                self.circuit_config, shared=self.shared, model_id=model_id, observer=self.observer
            )
        return breaker

    def stats(self, model_id: str) -> LatencyStats:
        stats = self.latency.get(model_id)
        if stats is None:
            if self.shared is None:
                stats = LatencyStats()
            else:
                stats = SharedLatencyStats(shared=self.shared, model_id=model_id)
            self.latency[model_id] = stats
        return stats

    def observed(self, model_id: str) -> LatencyStats | None:
        """What routing estimates *model_id*'s speed from: this process's averages, or with
        a shared backend every process's merged ones (models this process never called too)."""
        local = self.latency.get(model_id)
        if self.shared is None:
            return local
        merged = self.shared.latency(model_id)
        if merged is None or not merged.samples:
            return local
        mine = local or LatencyStats()
        return LatencyStats(
            ttft_ms=merged.ttft_ms if merged.ttft_ms is not None else mine.ttft_ms,
            tokens_per_s=merged.tokens_per_s or mine.tokens_per_s,
            output_tokens=merged.output_tokens or mine.output_tokens,
            samples=merged.samples,
        )

    def cool_down(self, model_id: str, now: float, retry_after: float) -> None:
        """A server asked for *retry_after* seconds of quiet: skip the model until then."""
        until = now + retry_after
        if self.observer is not None:
            self.observer.cooldown(model_id, retry_after)
        if self.shared is not None:
            self.shared.set_cooldown(model_id, retry_after)
        known = self.cooldowns.get(model_id)
        if known is None or known[0] < until:
            self.cooldowns[model_id] = (until, retry_after)

    def cooling_reason(self, model_id: str, now: float) -> str | None:
        """``"cooling down until 12:00:30 UTC (...)"`` while a Retry-After holds, else ``None``."""
        known = self.cooldowns.get(model_id)
        if self.shared is not None:
            shared = self.shared.cooldown(model_id)
            if shared is not None and (known is None or known[0] < now + shared[0]):
                known = (now + shared[0], shared[1])
        if known is None:
            return None
        until, asked = known
        left = until - now
        if left <= 0:
            self.cooldowns.pop(model_id, None)
            return None
        wall = time.strftime("%H:%M:%S", time.gmtime(time.time() + left))
        return f"cooling down until {wall} UTC ({left:.1f}s left; server's Retry-After {asked:g}s)"
