"""``Client``: genrouter's API for synchronous code, driving the one async implementation.

Each ``Client`` runs a private event loop on a daemon thread (its *portal*) and hands every
call to it; there is no second copy of the logic. Calls may come from any thread, but not from
inside the portal's own loop (a hook calling back into the sync client would deadlock, so that
raises instead).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, overload

from pydantic import BaseModel

from genrouter.client import AsyncClient, ModelStatus
from genrouter.config import Config
from genrouter.errors import GenRouterError
from genrouter.providers.base import Provider
from genrouter.routing.hooks import AsyncHooks
from genrouter.streaming import AsyncChatStream, ChatStream
from genrouter.types import ChatCompletion, RouteDecision

__all__ = ["Client"]

T = TypeVar("T")
MessageInput = Iterable[Mapping[str, Any] | BaseModel]


class _Portal:
    """An event loop on its own thread; :meth:`call` runs a coroutine there and waits."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="genrouter-portal", daemon=True
        )
        self._thread.start()
        self._closed = False

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        if self._closed:
            raise GenRouterError("this client is closed")
        if threading.current_thread() is self._thread:
            raise GenRouterError("a sync genrouter Client cannot be used from its own hooks")

        async def run() -> T:
            return await fn(*args, **kwargs)

        coro: Coroutine[Any, Any, T] = run()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


class Client:
    """The synchronous client: the same API as :class:`~genrouter.AsyncClient`, blocking.

    Use it as a context manager, or call :meth:`close`, to release connections and the
    portal thread.
    """

    def __init__(
        self,
        config: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        hooks: AsyncHooks | None = None,
        tracing: Any = None,
        providers: Mapping[str, Provider] | None = None,
        seed: int | None = None,
    ) -> None:
        self._async = AsyncClient(
            config, env=env, hooks=hooks, tracing=tracing, providers=providers, seed=seed
        )
        self._portal = _Portal()
        self.chat = Chat(self)

    @property
    def async_client(self) -> AsyncClient:
        """The async client underneath (use it only from the portal's loop)."""
        return self._async

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the async client's providers and pool, then stop the portal thread."""
        if not self._portal._closed:
            self._portal.call(self._async.aclose)
            self._portal.close()

    def route(self, *, model: str = "auto", messages: MessageInput, **params: Any) -> RouteDecision:
        """Dry run: the routing decision for this request, without calling any model."""

        async def dry_run() -> RouteDecision:
            return self._async.route(model=model, messages=messages, **params)

        return self._portal.call(dry_run)

    def models(self) -> list[ModelStatus]:
        """Every catalog model and whether it is usable here."""
        return self._async.models()


class Chat:
    """``client.chat``: holds ``completions``."""

    def __init__(self, client: Client) -> None:
        self.completions = Completions(client)


class Completions:
    """``client.chat.completions``: blocking ``create``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @overload
    def create(
        self,
        *,
        model: str = ...,
        messages: MessageInput,
        stream: Literal[False] = False,
        **params: Any,
    ) -> ChatCompletion: ...

    @overload
    def create(
        self, *, model: str = ..., messages: MessageInput, stream: Literal[True], **params: Any
    ) -> ChatStream: ...

    @overload
    def create(
        self, *, model: str = ..., messages: MessageInput, stream: bool, **params: Any
    ) -> ChatCompletion | ChatStream: ...

    def create(
        self, *, model: str = "auto", messages: MessageInput, stream: bool = False, **params: Any
    ) -> ChatCompletion | ChatStream:
        """Create a chat completion; see :meth:`genrouter.client.AsyncCompletions.create`."""
        client = self._client
        result: ChatCompletion | AsyncChatStream = client._portal.call(
            client._async.chat.completions.create,
            model=model,
            messages=list(messages),
            stream=stream,
            **params,
        )
        if isinstance(result, AsyncChatStream):
            return ChatStream(result, client._portal)
        return result
