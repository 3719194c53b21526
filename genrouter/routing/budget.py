"""A per-client spending limit over a rolling window.

Before a call, its estimated cost is reserved; after it, the reservation is settled with the
cost of the usage the provider reported (or released if the call failed). Routing sees the
money left and excludes candidates whose estimate does not fit.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from genrouter.config import BudgetConfig

__all__ = ["Budget", "Reservation"]


@dataclass(slots=True)
class Reservation:
    """Money set aside for one call in flight."""

    amount: float
    settled: bool = False


@dataclass(slots=True)
class Budget:
    """Spending of one client. ``now`` comes from the client's clock."""

    config: BudgetConfig
    spent: deque[tuple[float, float]] = field(default_factory=deque)
    reserved: float = 0.0

    def spent_usd(self, now: float) -> float:
        """Money settled within the window ending at *now*."""
        while self.spent and now - self.spent[0][0] > self.config.window_s:
            self.spent.popleft()
        return sum(amount for _, amount in self.spent)

    def remaining_usd(self, now: float) -> float:
        """What may still be spent: the limit less settled and reserved money."""
        return self.config.limit_usd - self.spent_usd(now) - self.reserved

    def reserve(self, amount: float) -> Reservation:
        amount = max(amount, 0.0)
        self.reserved += amount
        return Reservation(amount)

    def try_reserve(self, amount: float, now: float) -> Reservation | None:
        """Reserve *amount* if it fits what is left, else ``None``. Free calls always fit.

        Checking and reserving in one step (no ``await`` between them) keeps concurrent
        requests from each seeing the same money left and spending it twice.
        """
        if amount > 0 and amount > self.remaining_usd(now):
            return None
        return self.reserve(amount)

    def settle(self, reservation: Reservation, actual: float | None, now: float) -> None:
        """Replace the reservation with the actual cost (the estimate if the cost is unknown)."""
        if reservation.settled:
            return
        reservation.settled = True
        self.reserved -= reservation.amount
        cost = reservation.amount if actual is None else actual
        if cost > 0:
            self.spent.append((now, cost))

    def release(self, reservation: Reservation) -> None:
        """The call failed before it cost anything: give the reservation back."""
        if not reservation.settled:
            reservation.settled = True
            self.reserved -= reservation.amount
