"""This process's slice of a shared budget (the Redis backend's lease), as plain data."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

__all__ = ["FLUSH_S", "KEEP_S", "LEASE_CALLS", "LEASE_IDLE_S", "LEASE_SHARE", "Lease"]

KEEP_S = 5.0  # a fact (or the totals) not read for this long is no longer kept fresh
FLUSH_S = 0.05  # spend is sent at most this often (a crash loses at most this much)
LEASE_CALLS = 32.0  # a lease asks for this many calls' worth...
LEASE_SHARE = 0.125  # ...but at most this share of the money free at the time
LEASE_IDLE_S = 2.0  # an unused lease is given back after this


@dataclass(slots=True)
class Lease:
    """This process's slice of the shared budget (guarded by the backend's lock).

    ``left`` was granted and is not reserved by a call; ``held`` is reserved by calls in
    flight; ``unsent`` was spent here and not yet added to Redis' total. On Redis the lease
    is ``left + held`` (+ ``unsent`` until sent), so every process's spending stays inside
    what Redis granted it.
    """

    id: str
    left: float = 0.0
    held: dict[str, float] | None = None
    unsent: float = 0.0
    sending: float = 0.0
    limit_usd: float = 0.0
    window_s: float = 1.0
    alive_until: float = 0.0  # the lease exists on Redis until about then
    synced_at: float = -math.inf
    spent_r: float = 0.0  # Redis' spent total at the last sync
    others_r: float = 0.0  # other processes' leases at the last sync
    last_amount: float = 0.0
    last_use: float = -math.inf
    last_flush: float = -math.inf
    totals_wanted: float = -math.inf
    busy: bool = False  # a housekeeping job is in flight
    claiming: int = 0  # reserve() calls waiting for a grant to take: nothing is given back
    refused_at: float = -math.inf  # when Redis last had not even `need` free
    capped_at: float = -math.inf  # when a top-up last got nothing (the lease is at its cap)

    def _held(self) -> dict[str, float]:
        if self.held is None:
            self.held = {}
        return self.held

    def take(self, rid: str, amount: float, now: float) -> bool:
        if now >= self.alive_until:
            self.left = 0.0  # expired on Redis (or never granted): ask again
        if amount > self.left + 1e-9:  # the same nano-dollar of slack as the script
            return False
        self.left = max(self.left - amount, 0.0)
        self._held()[rid] = amount
        self.last_amount = max(amount, 1e-12)
        self.last_use = now
        return True

    def spend(self, rid: str, cost: float) -> None:
        amount = self._held().pop(rid, None)
        if amount is not None:
            # Clamped: a call that cost more than its estimate overdrew; the excess is
            # counted as spent, and the lease cannot go below empty.
            self.left = max(self.left + amount - max(cost, 0.0), 0.0)
        self.unsent += max(cost, 0.0)

    def take_spend(self) -> float:
        spend, self.unsent = self.unsent, 0.0
        self.sending += spend
        return spend

    def unsent_back(self, spend: float) -> None:
        self.sending -= spend
        self.unsent += spend

    def keep(self) -> float:
        return self.left + sum(self._held().values())

    def settled(
        self, spend: float, granted: float, spent: float, others: float, ttl: float, asked: bool
    ) -> None:
        now = time.monotonic()
        if asked and granted == 0:
            self.capped_at = now
        self.sending -= spend
        if granted > 0:
            self.left += granted
        elif granted < 0:
            self.refused_at = now
        self.spent_r, self.others_r, self.synced_at = spent, others, now
        self.last_flush = now
        self.alive_until = now + ttl * 0.9 if self.keep() > 0 or granted > 0 else 0.0

    def totals(self, now: float, fresh_s: float, stale_s: float) -> tuple[float, float] | None:
        if now - self.synced_at >= fresh_s + stale_s:
            return None
        spent = self.spent_r + self.unsent + self.sending
        return spent, self.others_r + sum(self._held().values())

    def due(self, now: float, cache_s: float, ttl: float) -> tuple[float, float, bool] | None:
        """The housekeeping job due now, as ``(need, want, give_back)``, or ``None``."""
        if self.busy:
            return None
        held = bool(self._held())
        idle = now - self.last_use > LEASE_IDLE_S
        action: tuple[float, float, bool] | None = None
        tight = now - self.refused_at < LEASE_IDLE_S  # Redis lately had too little free
        # Not while a reserve() waits to take what it was just granted: a fresh lease has no
        # use yet (so it looks idle), and the caller may run only after this tick.
        if self.left > 0 and not held and not self.claiming and (idle or tight):
            action = (0.0, 0.0, True)  # give back what this process does not use
        elif (
            not idle
            and self.left < self.last_amount * LEASE_CALLS / 4
            and not tight
            and now - self.capped_at > LEASE_IDLE_S
        ):
            # Top up ahead of need, so that calls rarely wait for a grant.
            action = (0.0, self.last_amount * LEASE_CALLS, False)
        elif self.unsent > 0 and now - self.last_flush >= FLUSH_S:
            action = (0.0, 0.0, False)
        elif (self.left > 0 or held) and now - self.synced_at > ttl / 4:
            action = (0.0, 0.0, False)  # keep the lease alive on Redis
        elif now - self.totals_wanted < KEEP_S and now - self.synced_at >= cache_s / 2:
            action = (0.0, 0.0, False)  # routing reads the totals: keep them fresh
        if action is not None:
            self.busy = True
        return action

    def done_busy(self) -> None:
        self.busy = False
