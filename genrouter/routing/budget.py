"""A per-client spending limit over a rolling window.

Before a call, its estimated cost is reserved; after it, the reservation is settled with the
cost of the usage the provider reported (or released if the call failed). Routing sees the
money left and excludes candidates whose estimate does not fit.

Settled money is kept as a running sum per time bucket, not per request: the window is cut
into :data:`BUCKETS_PER_WINDOW` buckets, each holding the total settled in it, and a running
total of all of them. A check costs the same at 10 settled requests as at a million (see
``bench/budget.py``), and memory is bounded by the bucket count. The price is granularity:
money leaves the window when its whole bucket has, up to ``window_s / BUCKETS_PER_WINDOW``
after the exact moment, which errs towards holding the limit, never towards overspending.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from genrouter.config import BudgetConfig

if TYPE_CHECKING:
    from genrouter.state import StateBackend

__all__ = ["BUCKETS_PER_WINDOW", "Budget", "Reservation"]

BUCKETS_PER_WINDOW = 64
"""How many buckets one window is cut into (the memory bound of a :class:`Budget`)."""


@dataclass(slots=True)
class Reservation:
    """Money set aside for one call in flight."""

    amount: float
    settled: bool = False
    shared_id: str | None = None  # held on the shared backend too, under this id


@dataclass(slots=True)
class Budget:
    """Spending of one client. ``now`` comes from the client's clock.

    ``spent`` holds ``(bucket index, money settled in it)`` pairs, oldest first, at most
    ``BUCKETS_PER_WINDOW + 1`` of them; ``total`` is their running sum.
    """

    config: BudgetConfig
    spent: deque[tuple[int, float]] = field(default_factory=deque)
    reserved: float = 0.0
    total: float = 0.0
    # With a shared backend the limit holds across every process (atomic reserve/settle on
    # the backend); the local sums are kept as the fallback while it has no answer.
    shared: StateBackend | None = None
    shared_ids: int = 0  # reservations held on the shared backend so far (their ids)

    def _bucket(self, now: float) -> int:
        return math.floor(now * BUCKETS_PER_WINDOW / self.config.window_s)

    def _expire(self, now: float) -> None:
        # A bucket leaves once its *end* is more than a window before *now*: an entry is never
        # forgotten early, at most one bucket width late.
        oldest_kept = self._bucket(now) - BUCKETS_PER_WINDOW
        expired = False
        while self.spent and self.spent[0][0] < oldest_kept:
            self.spent.popleft()
            expired = True
        if expired:
            # Re-add what is left (at most BUCKETS_PER_WINDOW numbers, once per bucket) so
            # rounding from subtracting never accumulates.
            self.total = math.fsum(amount for _, amount in self.spent)

    def spent_usd(self, now: float) -> float:
        """Money settled within the window ending at *now* (by every process, when shared)."""
        if self.shared is not None:
            totals = self.shared.budget_totals(self.config.window_s)
            if totals is not None:
                return totals[0]
        self._expire(now)
        return self.total

    def remaining_usd(self, now: float) -> float:
        """What may still be spent: the limit less settled and reserved money."""
        if self.shared is not None:
            totals = self.shared.budget_totals(self.config.window_s)
            if totals is not None:
                return self.config.limit_usd - totals[0] - totals[1]
        return self.config.limit_usd - self.spent_usd(now) - self.reserved

    def reserve(self, amount: float) -> Reservation:
        """Set *amount* aside (negative or NaN amounts reserve nothing)."""
        amount = amount if amount > 0 and math.isfinite(amount) else 0.0
        self.reserved += amount
        return Reservation(amount)

    def try_reserve(self, amount: float, now: float) -> Reservation | None:
        """Reserve *amount* if it fits what is left, else ``None``. Free calls always fit.

        Checking and reserving in one step (no ``await`` between them) keeps concurrent
        requests from each seeing the same money left and spending it twice.
        """
        if self.shared is not None and amount > 0 and math.isfinite(amount):
            # Unique within this client is enough (the backend keys its own lease by it),
            # and a counter costs no syscall on the request path.
            self.shared_ids += 1
            rid = f"r{self.shared_ids}"
            config = self.config
            held = self.shared.reserve(
                rid, amount, limit_usd=config.limit_usd, window_s=config.window_s
            )
            if held is False:
                return None
            if held:
                reservation = self.reserve(amount)
                reservation.shared_id = rid
                return reservation
        if amount > 0 and amount > self._local_remaining(now):
            return None
        return self.reserve(amount)

    def _local_remaining(self, now: float) -> float:
        self._expire(now)
        return self.config.limit_usd - self.total - self.reserved

    def settle(self, reservation: Reservation, actual: float | None, now: float) -> None:
        """Replace the reservation with the actual cost (the estimate if the cost is unknown)."""
        if reservation.settled:
            return
        reservation.settled = True
        self._unreserve(reservation.amount)
        cost = reservation.amount if actual is None or not math.isfinite(actual) else actual
        if reservation.shared_id is not None and self.shared is not None:
            self.shared.settle(reservation.shared_id, cost, window_s=self.config.window_s)
        if cost <= 0:
            return
        bucket = self._bucket(now)
        if self.spent and self.spent[-1][0] >= bucket:
            # The same bucket (or a clock that stepped back): add to the newest one.
            index, amount = self.spent[-1]
            self.spent[-1] = (index, amount + cost)
        else:
            self.spent.append((bucket, cost))
        self.total += cost
        self._expire(now)

    def release(self, reservation: Reservation) -> None:
        """The call failed before it cost anything: give the reservation back."""
        if not reservation.settled:
            reservation.settled = True
            self._unreserve(reservation.amount)
            if reservation.shared_id is not None and self.shared is not None:
                self.shared.release(reservation.shared_id)

    def _unreserve(self, amount: float) -> None:
        # Clamped at zero: float rounding over many reservations must not leave a negative
        # reservation that would let the limit be exceeded by that much.
        self.reserved = max(self.reserved - amount, 0.0)
