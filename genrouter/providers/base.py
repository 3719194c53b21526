"""The provider interface: two async methods and the facts routing needs.

A provider turns one :class:`ProviderCall` into one answer. It never retries and never falls
back (routing does both, once, in one place), and it raises only
:class:`~genrouter.errors.ProviderError` subclasses (or
:class:`~genrouter.errors.InvalidRequestError` / :class:`~genrouter.errors.MediaError` for
input it refuses before sending), each ``from`` the vendor exception that caused it.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from genrouter.catalog import ModelSpec
from genrouter.request import ChatRequest
from genrouter.types import ChatCompletion, ChatCompletionChunk

__all__ = ["Provider", "ProviderCall", "aclose_if_possible"]


@dataclass(slots=True)
class ProviderCall:
    """One attempt at one model.

    ``timeout`` is the seconds left for the whole attempt (``None``: the provider's default).
    A provider records parameters it dropped (e.g. ``temperature`` for o3-mini) in
    ``dropped_params`` and anything else worth telling the caller in ``notes``; both end up in
    the response's :class:`~genrouter.types.RouteInfo`.
    """

    request: ChatRequest
    model: ModelSpec
    timeout: float | None = None
    dropped_params: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@runtime_checkable
class Provider(Protocol):
    """A source of chat completions: a vendor API, a compatible server or a local model."""

    @property
    def name(self) -> str:
        """The provider's configured name (the part before ``/`` in model ids)."""
        ...

    @property
    def is_remote(self) -> bool:
        """Whether calls cross the network (offline mode skips remote providers)."""
        ...

    def has_credentials(self) -> bool:
        """Whether the provider can authenticate now (a key is set, or none is needed)."""
        ...

    async def complete(self, call: ProviderCall) -> ChatCompletion:
        """Answer *call* in one piece."""
        ...

    def stream(self, call: ProviderCall) -> AsyncIterator[ChatCompletionChunk]:
        """Answer *call* as chunks. Any async iterator will do; an async generator is best.

        The caller closes the iterator when it stops early or is done, if it can be closed
        (an ``aclose()`` method, as async generators have; see :func:`aclose_if_possible`).
        The last chunk carries ``usage`` when the provider reports it.
        """
        ...

    async def aclose(self) -> None:
        """Release connections, threads and loaded models."""
        ...


async def aclose_if_possible(iterator: AsyncIterator[Any]) -> None:
    """Close *iterator* if it can be closed: await its ``aclose()`` when it has one.

    The provider contract asks only for an :class:`~collections.abc.AsyncIterator` (``__aiter__``
    and ``__anext__``); async generators and most stream objects also have ``aclose()``, which
    releases their connection at once instead of when they are garbage-collected. A plain
    iterator without it is left alone. A synchronous ``aclose`` that returns ``None`` is
    accepted too.
    """
    close = getattr(iterator, "aclose", None)
    if close is None:
        return
    result = close()
    if inspect.isawaitable(result):
        await result
