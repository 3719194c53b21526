"""Where routing state lives: the :class:`StateBackend` seam.

:class:`~genrouter.routing.health.Health` and :class:`~genrouter.routing.budget.Budget` keep
their own local state (today's behaviour, and the whole truth with the default in-memory
backend). A shared backend adds the facts other processes contributed and records this
process's outcomes for them; routing decisions stay pure functions over those facts.

Every method is plain data in and out. A read that returns ``None`` means "no shared fact"
(nothing known, or the backend is unavailable): the caller then decides on local state
alone, so a backend that fails never fails a request. Times are *durations* (seconds left),
never timestamps, so processes with different clocks agree.

Backends are imported only when configured: ``import genrouter`` never imports ``redis``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from genrouter.config import StateConfig

__all__ = ["CircuitFacts", "LatencyFacts", "StateBackend", "build_backend"]


@dataclass(frozen=True, slots=True)
class CircuitFacts:
    """A model's breaker as every process sees it."""

    tripped: bool  # opened and not yet closed by a successful probe
    open_left_s: float  # seconds of cooldown left (0: half-open when tripped)
    probing: bool  # some process holds the probe ticket
    failures: int  # failures counted in the current window (while closed)


@dataclass(frozen=True, slots=True)
class LatencyFacts:
    """Merged speed estimates of a model (exponentially weighted, decayed by age)."""

    ttft_ms: float | None
    tokens_per_s: float | None
    output_tokens: float | None
    samples: int


class StateBackend(Protocol):
    """Facts shared between processes, and the outcomes that update them."""

    def note(self) -> str | None:
        """A line for route info while the backend is degraded (e.g. Redis down), else ``None``."""
        ...

    # -- circuit breakers
    def circuit(self, model_id: str) -> CircuitFacts | None: ...
    def circuit_failure(
        self, model_id: str, *, threshold: int, window_s: float, cooldown_s: float
    ) -> None: ...
    def circuit_success(self, model_id: str) -> None: ...
    def claim_probe(self, model_id: str) -> bool | None:
        """Atomically take the one probe ticket: ``True`` got it, ``False`` someone has it or
        the breaker is still cooling, ``None`` no shared answer (decide locally)."""
        ...

    def probe_outcome(self, model_id: str, *, ok: bool, cooldown_s: float) -> None: ...
    def release_probe(self, model_id: str) -> None: ...

    # -- Retry-After cooldowns and reachability
    def cooldown(self, model_id: str) -> tuple[float, float] | None:
        """``(seconds left, the Retry-After asked)`` of a shared cooldown, or ``None``."""
        ...

    def set_cooldown(self, model_id: str, retry_after: float) -> None: ...
    def host_down(self, host: str) -> float | None:
        """Seconds since *host* was marked unreachable (within its window), or ``None``."""
        ...

    def mark_host(self, host: str, *, down_for_s: float | None) -> None:
        """Mark *host* unreachable for *down_for_s*, or reachable again with ``None``."""
        ...

    # -- budget
    def reserve(self, rid: str, amount: float, *, limit_usd: float, window_s: float) -> bool | None:
        """Check and hold *amount* (*rid*: unique within this process) in one step: ``True``
        held, ``False`` does not fit (the Redis backend holds it from this process's lease
        of the shared limit, see docs/state.md)."""
        ...

    def settle(self, rid: str, cost: float, *, window_s: float) -> None: ...
    def release(self, rid: str) -> None: ...
    def budget_totals(self, window_s: float) -> tuple[float, float] | None:
        """``(spent in the window, reserved now)`` across every process."""
        ...

    # -- latency estimates
    def latency(self, model_id: str) -> LatencyFacts | None: ...
    def observe_latency(
        self, model_id: str, ttft_ms: float | None, output_tokens: int, tokens_per_s: float | None
    ) -> None: ...

    def close(self) -> None: ...


def build_backend(config: StateConfig) -> StateBackend | None:
    """The shared backend *config* asks for; ``None`` for ``memory`` (local state only)."""
    if config.backend == "memory":
        return None
    from genrouter.state.redis import RedisBackend

    return RedisBackend(config)
