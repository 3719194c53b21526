"""``Client``: genrouter's API for synchronous code, driving the one async implementation.

Each ``Client`` runs a private event loop on a daemon thread (its *portal*) and hands every
call to it; there is no second copy of the logic. Calls may come from any thread, but not from
inside the portal's own loop (a hook calling back into the sync client would deadlock, so that
raises instead).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar, Unpack, overload

from genrouter.client import AsyncClient, ModelStatus
from genrouter.config import Config
from genrouter.errors import GenRouterError
from genrouter.providers.base import Provider
from genrouter.routing.hooks import AsyncHooks
from genrouter.streaming import AsyncChatStream, ChatStream
from genrouter.types import ChatCompletion, RouteDecision

if TYPE_CHECKING:
    from genrouter.params import CompletionCreateParams, MessageInput

__all__ = ["Client"]

T = TypeVar("T")


class _Portal:
    """An event loop on its own thread; :meth:`call` runs a coroutine there and waits."""

    # How often a waiting caller wakes up, so that Ctrl-C reaches it during a long call.
    _WAKE_S = 0.2

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="genrouter-portal", daemon=True
        )
        self._thread.start()
        self._closed = False
        self._closing = threading.Lock()

    @property
    def closed(self) -> bool:
        return self._closed

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        if self._closed:
            raise GenRouterError("this client is closed")
        if threading.current_thread() is self._thread:
            raise GenRouterError("a sync genrouter Client cannot be used from its own hooks")

        running: list[asyncio.Task[Any] | None] = []

        async def run() -> T:
            running.append(asyncio.current_task())
            return await fn(*args, **kwargs)

        coro: Coroutine[Any, Any, T] = run()
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            while not future.done():
                concurrent.futures.wait([future], timeout=self._WAKE_S)
        except BaseException:
            # Ctrl-C (or any interruption): stop the work, not just the wait, and wait for it
            # to stop. Returning while it still runs would let the caller's cleanup (a
            # stream's close) run beside it: "aclose(): asynchronous generator is already
            # running".
            self._stop(future, running)
            raise
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise GenRouterError("the client was closed while this call was running") from None

    # How long an interrupted call may take to unwind before the caller gets control back.
    _UNWIND_S = 5.0

    def _stop(self, future: concurrent.futures.Future[Any], running: list[Any]) -> None:
        task = running[0] if running else None
        if task is None:
            future.cancel()
            return
        self._loop.call_soon_threadsafe(task.cancel)
        concurrent.futures.wait([future], timeout=self._UNWIND_S)

    def close(self, aclose: Callable[[], Awaitable[None]]) -> None:
        """Cancel work in flight, close open streams, run *aclose*, then stop the thread."""
        with self._closing:
            if self._closed:
                return

            async def shutdown() -> None:
                current = asyncio.current_task()
                pending = [t for t in asyncio.all_tasks() if t is not current]
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                await self._loop.shutdown_asyncgens()  # streams the caller left open
                await aclose()

            try:
                asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=30)
            finally:
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
        """Cancel calls in flight, close open streams, providers and the pool, stop the thread.

        Safe to call more than once and from any thread; calls still running in other threads
        raise :class:`~genrouter.errors.GenRouterError`.
        """
        self._portal.close(self._async.aclose)

    def route(self, *, model: str = "auto", messages: MessageInput, **params: Any) -> RouteDecision:
        """Dry run: the routing decision for this request, without calling any model."""

        async def dry_run() -> RouteDecision:
            return self._async.route(model=model, messages=messages, **params)

        return self._portal.call(dry_run)

    def models(self) -> list[ModelStatus]:
        """Every catalog model and whether it is usable here."""

        async def listing() -> list[ModelStatus]:
            return self._async.models()

        return self._portal.call(listing)


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
        messages: MessageInput,
        model: str = ...,
        stream: Literal[False] | None = ...,
        **params: Unpack[CompletionCreateParams],
    ) -> ChatCompletion: ...

    @overload
    def create(
        self,
        *,
        messages: MessageInput,
        model: str = ...,
        stream: Literal[True],
        **params: Unpack[CompletionCreateParams],
    ) -> ChatStream: ...

    @overload
    def create(
        self,
        *,
        messages: MessageInput,
        model: str = ...,
        stream: bool,
        **params: Unpack[CompletionCreateParams],
    ) -> ChatCompletion | ChatStream: ...

    def create(
        self,
        *,
        messages: MessageInput,
        model: str = "auto",
        stream: bool | None = False,
        **params: Unpack[CompletionCreateParams],
    ) -> ChatCompletion | ChatStream:
        """Create a chat completion; see :meth:`genrouter.client.AsyncCompletions.create`."""
        client = self._client
        call: dict[str, Any] = {"model": model, "messages": list(messages), "stream": stream}
        call.update(params)
        result: ChatCompletion | AsyncChatStream = client._portal.call(
            client._async.chat.completions.create, **call
        )
        if isinstance(result, AsyncChatStream):
            return ChatStream(result, client._portal)
        return result
