"""A dict that keeps at most ``maxsize`` entries, dropping the least recently used.

Per-model state (the planner's specs for uncatalogued ``provider/model`` names, their
single-model routes, health's latency averages and circuit breakers) is keyed by names the
caller chooses. Unbounded, each distinct ad-hoc name would keep a few kilobytes for the
client's lifetime; bounded, a client that sees a million names holds at most
:data:`PER_MODEL_CACHE_SIZE` of them. Evicting a model only forgets what was learnt about it
(it is rebuilt, or starts with fresh statistics, if it comes back).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

__all__ = ["PER_MODEL_CACHE_SIZE", "LRUDict"]

PER_MODEL_CACHE_SIZE = 1024
"""How many models each per-model cache of a client remembers."""

K = TypeVar("K")
V = TypeVar("V")


class LRUDict(OrderedDict[K, V]):
    """An ``OrderedDict`` bounded to *maxsize* entries; reading or writing an entry renews it."""

    def __init__(self, maxsize: int = PER_MODEL_CACHE_SIZE) -> None:
        super().__init__()
        self.maxsize = maxsize

    def __getitem__(self, key: K) -> V:
        value = super().__getitem__(key)
        self.move_to_end(key)
        return value

    def get(self, key: K, default: V | None = None) -> V | None:  # type: ignore[override]
        """The value for *key* (renewing it), or *default*."""
        try:  # one lookup, not `in` then `[]` (several per request: health, plans)
            value = OrderedDict.__getitem__(self, key)
        except KeyError:
            return default
        self.move_to_end(key)
        return value

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.maxsize:
            self.popitem(last=False)
