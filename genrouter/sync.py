"""``Client``: genrouter's API for synchronous code, driving the one async implementation.

Each ``Client`` runs a private event loop on a daemon thread (its *portal*: anyio's blocking
portal) and hands every call to it; there is no second copy of the logic. Calls may come from
any thread, but not from inside the portal's own loop (a hook calling back into the sync client
would deadlock, so that raises instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from datetime import date
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar, Unpack, overload

from pydantic import BaseModel

from genrouter.client import AsyncClient, ModelStatus
from genrouter.config import Config
from genrouter.errors import GenRouterError
from genrouter.providers.base import Provider
from genrouter.routing.hooks import AsyncHooks
from genrouter.streaming import AsyncChatStream, ChatStream
from genrouter.types import ChatCompletion, ChatCompletionChunk, RouteDecision
from genrouter.validation import check_params

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from anyio.from_thread import BlockingPortal

    from genrouter.refresh import RefreshReport

if TYPE_CHECKING:
    import httpx2

    from genrouter.catalog import ModelSpec
    from genrouter.routing.health import Health
    from genrouter.tokens import TokenCounter

if TYPE_CHECKING:
    from genrouter.structured import ParsedChatCompletion
    from genrouter.structured_stream import ChatCompletionStreamManager

if TYPE_CHECKING:
    from genrouter.params import CompletionCreateParams, MessageInput

__all__ = ["Client"]

T = TypeVar("T")
ModelT = TypeVar("ModelT", bound=BaseModel)


_UNSET: Any = object()  # a call's value before it has one


class _Call:
    """One call handed to the portal: what the caller waits on, and the task doing the work.

    The caller blocks on :attr:`done` (a lock taken at birth); the task releases it as its
    coroutine returns or raises, with the outcome already stored here: one
    ``call_soon_threadsafe`` out, one lock release back, and no loop turn for a done-callback.
    ``run_coroutine_threadsafe`` + ``concurrent.futures.wait`` (the hand-off before) built a
    ``concurrent.futures.Future``, chained it to the task both ways and installed a fresh
    waiter (a ``threading.Event`` and its condition) on every wait: see bench/portal.py.
    """

    __slots__ = ("abandoned", "args", "done", "error", "fn", "kwargs", "task", "value")

    def __init__(
        self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.done = threading.Lock()
        self.done.acquire()
        self.task: asyncio.Task[None] | None = None
        self.value: Any = _UNSET
        self.error: BaseException | None = None
        # Set when the caller gave up (Ctrl-C) or the client closed before the work could run.
        self.abandoned = False

    async def _run(self) -> None:
        try:
            self.value = await self.fn(*self.args, **self.kwargs)
        except BaseException as error:
            self.error = error  # raised in the caller's thread, by result()
            if not isinstance(error, Exception):
                raise  # cancelled (or the loop is stopping): the task ends so too
        finally:
            self.wake()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the loop: start the work (unless the caller already gave up)."""
        if self.abandoned:
            self.wake()
        else:
            self.task = loop.create_task(self._run())

    def wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # already woken (close raced the result)
            self.done.release()

    def cancel(self) -> None:
        """On the loop: stop the work; the caller is woken once it unwound."""
        self.abandoned = True
        if self.task is None:
            self.wake()  # never started, never will
        else:
            self.task.cancel()

    def result(self) -> Any:
        """In the caller's thread, once woken: the value, or the error raised in its thread."""
        error, value = self.error, self.value
        self.error = self.value = None  # no cycle through the traceback
        if error is not None:
            if isinstance(error, asyncio.CancelledError | GeneratorExit):  # shut down
                raise GenRouterError("the client was closed while this call was running")
            raise error
        if value is _UNSET:  # never ran: the client closed first
            raise GenRouterError("the client was closed while this call was running")
        return value


class _Portal:
    """anyio's blocking portal (an event loop on its own thread), plus what a sync SDK needs.

    anyio (:func:`anyio.from_thread.start_blocking_portal`) owns the thread, the event loop and
    its final clean-up (tasks left over, async generators, the default executor's threads).
    Written here, because the portal does not do it or costs too much for a per-chunk call:

    - the hand-off of each call is one ``call_soon_threadsafe`` onto the portal's loop and one
      lock released back (:class:`_Call`): anyio's ``BlockingPortal.call`` / ``start_task_soon``
      waits for the loop twice per call (once to spawn the task, once for its result), which
      bench/portal.py measured at 1.8-2.7x per hand-off and 1.6-1.8x for a sync stream of 35
      chunks (docs/architecture.md), and ``run_coroutine_threadsafe`` + ``concurrent.futures
      .wait`` cost about 1.5x this one (docs/benchmarks.md, "Sync client hand-off");
    - Ctrl-C reaches a waiting caller: the wait wakes every :attr:`_WAKE_S` (a blocked
      ``Future.result()`` never sees ``_thread.interrupt_main``), and an interrupted call is
      cancelled *and waited for*, so the caller's cleanup (a stream's close) does not run beside
      it ("aclose(): asynchronous generator is already running");
    - closing is safe against calls on other threads: from the moment :meth:`close` starts, new
      calls (and the next chunk of an open stream) raise :class:`GenRouterError`; calls in
      flight are cancelled and raise; any call whose work could not run is woken with an error;
    - a hook calling back into the sync client (on the portal's own thread) raises instead of
      deadlocking.
    """

    # How often a waiting caller wakes up, so that Ctrl-C reaches it during a long call.
    _WAKE_S = 0.2
    # How long an interrupted call may take to unwind before the caller gets control back.
    _UNWIND_S = 5.0

    def __init__(self) -> None:
        from anyio.from_thread import start_blocking_portal

        self._manager: AbstractContextManager[BlockingPortal]
        self._manager = start_blocking_portal(name="genrouter-portal")
        self._portal: BlockingPortal = self._manager.__enter__()
        self._loop, self._thread, self._host = self._portal.call(_loop_thread_and_host)
        self._closed = False
        self._closing = threading.Lock()
        self._stopping = False
        self._thread_id = self._thread.ident
        self._in_flight: set[_Call] = set()
        self._in_flight_lock = threading.Lock()

    @property
    def closed(self) -> bool:
        return self._closed or self._stopping

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        if self._stopping or self._closed:
            raise GenRouterError("this client is closed")
        if threading.get_ident() == self._thread_id:
            raise GenRouterError("a sync genrouter Client cannot be used from its own hooks")
        call = _Call(fn, args, kwargs)
        with self._in_flight_lock:
            if self._stopping:
                raise GenRouterError("this client is closed")
            self._loop.call_soon_threadsafe(call.start, self._loop)
            self._in_flight.add(call)
        try:
            wait = call.done.acquire
            while not wait(timeout=self._WAKE_S):
                pass
        except BaseException:
            # Ctrl-C (or any interruption): stop the work, not just the wait, and wait for it
            # to stop.
            self._stop(call)
            raise
        finally:
            with self._in_flight_lock:
                self._in_flight.discard(call)
        result: T = call.result()
        return result

    def _stop(self, call: _Call) -> None:
        try:
            self._loop.call_soon_threadsafe(call.cancel)
        except RuntimeError:  # the loop is gone (closed meanwhile): nothing left to stop
            return
        call.done.acquire(timeout=self._UNWIND_S)

    def close(self, aclose: Callable[[], Awaitable[None]]) -> None:
        """Refuse new calls, cancel work in flight, close open streams, run *aclose*, then
        stop the portal (anyio then shuts the loop's worker threads down)."""
        with self._closing:
            if self._closed:
                return
            with self._in_flight_lock:
                self._stopping = True

            async def shutdown() -> None:
                current = asyncio.current_task()
                pending = [t for t in asyncio.all_tasks() if t is not current]
                pending = [t for t in pending if t not in self._host]  # anyio's own task
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                await asyncio.get_running_loop().shutdown_asyncgens()  # streams left open
                await aclose()

            try:
                asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=30)
            finally:
                self._closed = True
                with contextlib.suppress(Exception):
                    self._portal.call(self._portal.stop, True)
                self._thread.join(timeout=5)
                if self._thread.is_alive():
                    # Still winding down (an executor thread mid-generation): anyio's exit
                    # joins without a timeout, so let a daemon thread wait for it instead.
                    threading.Thread(
                        target=self._manager.__exit__, args=(None, None, None), daemon=True
                    ).start()
                else:
                    self._manager.__exit__(None, None, None)
                with self._in_flight_lock:
                    stranded, self._in_flight = list(self._in_flight), set()
                for call in stranded:
                    call.abandoned = True
                    call.wake()  # its work never ran: wake its caller with an error


def _loop_thread_and_host() -> tuple[
    asyncio.AbstractEventLoop, threading.Thread, frozenset[asyncio.Task[Any]]
]:
    """Run on a fresh portal: its loop, its thread, and the task(s) anyio runs the portal in
    (which :meth:`_Portal.close` must leave to anyio)."""
    current = asyncio.current_task()
    host = frozenset(t for t in asyncio.all_tasks() if t is not current)
    return asyncio.get_running_loop(), threading.current_thread(), host


# At most this many chunks wait for a sync reader before its stream's pump stops reading.
_AHEAD = 64


class _End:
    """What a pump puts after the last chunk: the end, the error the stream raised, or that
    the pump was cancelled (by ``close()``, Ctrl-C or the client closing)."""

    __slots__ = ("cancelled", "error")

    def __init__(self, error: Exception | None = None, *, cancelled: bool = False) -> None:
        self.error = error
        self.cancelled = cancelled


class _Pipe:
    """Between one stream's pump (on the portal's loop) and its sync reader (any thread).

    The pump puts chunks on :attr:`items` and never waits for the reader, unless
    :data:`_AHEAD` chunks are still unread: then it parks on :attr:`park` until the reader
    takes one. The pump publishes ``park`` *before* it checks the queue again, and the reader
    takes a chunk *before* it looks at ``park``, so a wake-up is never lost. The pump does not
    hold the sync stream object, so a stream dropped unread can be collected (its finalizer
    cancels the pump).
    """

    __slots__ = ("drain", "error", "items", "park", "task", "woken")

    def __init__(self) -> None:
        self.items: queue.SimpleQueue[ChatCompletionChunk | _End] = queue.SimpleQueue()
        self.park: asyncio.Future[None] | None = None
        self.woken: asyncio.Future[None] | None = None  # the reader's side only
        self.task: asyncio.Task[None] | None = None
        self.error: Exception | None = None
        self.drain = False  # until_done(): nobody reads the queue any more; never park

    async def pump(self, inner: AsyncChatStream) -> None:
        """On the portal: read *inner* to its end, each chunk onto the queue as it comes."""
        put = self.items.put
        try:
            async for chunk in inner:
                put(chunk)
                if self.items.qsize() >= _AHEAD and not self.drain:
                    await self._wait_for_room()
            await inner.aclose()  # ended: nothing left for the reader's close() to release
        except asyncio.CancelledError:
            try:
                await inner.aclose()  # parked when cancelled: the stream is still open
            finally:
                put(_End(cancelled=True))
            raise
        except Exception as error:  # delivered to the reader after the chunks before it
            self.error = error
            put(_End(error))
        else:
            put(_End())

    async def _wait_for_room(self) -> None:
        self.park = park = asyncio.get_running_loop().create_future()
        if self.items.qsize() >= _AHEAD and not self.drain:  # again, now that park is seen
            await park
        self.park = None

    def resume(self, loop: asyncio.AbstractEventLoop) -> None:
        """From the reader, after it took a chunk: wake a parked pump."""
        park = self.park
        if park is not None and park is not self.woken:
            self.woken = park
            with contextlib.suppress(RuntimeError):  # the loop is gone: nothing to wake
                loop.call_soon_threadsafe(_wake, park)


def _wake(park: asyncio.Future[None]) -> None:
    if not park.done():
        park.set_result(None)


def _cancel_pump(loop: asyncio.AbstractEventLoop, pipe: _Pipe) -> None:
    """A sync stream was dropped without ``close()``: stop its pump (from any thread)."""
    task = pipe.task
    if task is not None and not task.done():
        with contextlib.suppress(RuntimeError):  # the loop is gone, and the pump with it
            loop.call_soon_threadsafe(task.cancel)


class _PumpedChatStream(ChatStream):
    """A :class:`ChatStream` whose chunks a pump on the portal reads ahead for the caller.

    A round trip to the portal's thread costs about as much as a whole chunk's work. Here one
    task on the portal (the *pump*, started by the round trip that opened the stream) reads
    the stream as the network delivers it and queues each chunk; the caller takes chunks from
    the queue with no round trip at all, and blocks only when none is there yet. So a stream
    costs the round trip of ``create()`` and none per chunk; its ``close()`` costs none either
    once the stream ended. The caller gets each chunk once, in order, as soon as it arrived,
    and an error after the chunks before it; at most :data:`_AHEAD` chunks wait unread.
    """

    __slots__ = ("__weakref__", "_ended", "_pipe")

    def __init__(self, inner: AsyncChatStream, portal: _Portal) -> None:
        super().__init__(inner, portal)
        self._pipe = _Pipe()
        self._ended = False  # the caller took the pump's last item: it has stopped

    def start(self) -> None:
        """On the portal: start the pump."""
        loop = asyncio.get_running_loop()
        pipe = self._pipe
        pipe.task = loop.create_task(pipe.pump(self._inner))
        weakref.finalize(self, _cancel_pump, loop, pipe)

    def __next__(self) -> ChatCompletionChunk:
        portal = self._portal
        if portal._stopping or portal._closed:
            raise GenRouterError("this client is closed")
        if self._ended:
            raise StopIteration
        pipe = self._pipe
        try:
            item = pipe.items.get_nowait()
        except queue.Empty:
            item = self._wait()
        if isinstance(item, _End):
            self._ended = True
            if item.error is not None:
                raise item.error
            if item.cancelled and portal.closed:
                raise GenRouterError("the client was closed while this call was running")
            raise StopIteration
        if pipe.park is not None:
            pipe.resume(portal._loop)
        return item

    def _wait(self) -> ChatCompletionChunk | _End:
        """Block until the pump puts the next item; Ctrl-C stops the pump, and waits for it."""
        portal = self._portal
        get = self._pipe.items.get
        try:
            while True:
                try:
                    return get(timeout=portal._WAKE_S)
                except queue.Empty:
                    if portal._closed:  # closed, and the pump could not say so
                        raise GenRouterError("this client is closed") from None
        except BaseException:
            # Ctrl-C (or any interruption): stop the read too, and wait until it stopped.
            with contextlib.suppress(GenRouterError):
                portal.call(self._stop_pump)
            raise

    async def _stop_pump(self) -> None:
        task = self._pipe.task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])

    def close(self) -> None:
        """Stop the stream and release its connection (a no-op once the stream ended or the
        client is closed, which closed every open stream)."""
        ended, self._ended = self._ended, True
        if not ended and not self._portal.closed:
            self._portal.call(self._close)

    async def _close(self) -> None:
        await self._inner.aclose()  # stops the pump's read if one waits (the pump then ends)
        await self._stop_pump()  # a pump parked on a full queue

    def until_done(self) -> ChatCompletion:
        taken, self._ended = self._ended, True
        return self._portal.call(self._until_done, taken)

    async def _until_done(self, taken: bool) -> ChatCompletion:
        pipe = self._pipe
        pipe.drain = True
        if pipe.park is not None:
            _wake(pipe.park)
        if pipe.task is not None:
            await asyncio.wait([pipe.task])
            if pipe.error is not None and not taken:
                raise pipe.error  # not delivered yet: until_done() raises it
        return await self._inner.until_done()


def _close_dropped(portal: _Portal, aclose: Callable[[], Awaitable[None]]) -> None:
    """A ``Client`` was garbage-collected without ``close()``: free its thread and pool."""
    if not portal.closed and threading.current_thread() is not portal._thread:
        with contextlib.suppress(Exception):
            portal.close(aclose)


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
        metrics: Any = None,
        capture_content: bool | None = None,
        providers: Mapping[str, Provider] | None = None,
        http_client: httpx2.AsyncClient | None = None,
        token_counter: TokenCounter | None = None,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
        today: Callable[[], date] | None = None,
        model_cache: str | os.PathLike[str] | Literal[False] | None = None,
    ) -> None:
        # The same arguments as AsyncClient, passed through unchanged (tests/test_sync_parity.py
        # fails when the two drift apart).
        self._async = AsyncClient(
            config,
            env=env,
            hooks=hooks,
            tracing=tracing,
            metrics=metrics,
            capture_content=capture_content,
            providers=providers,
            http_client=http_client,
            token_counter=token_counter,
            clock=clock,
            seed=seed,
            today=today,
            model_cache=model_cache,
        )
        self._portal = _Portal()
        # A dropped Client (never closed) must not leak its portal thread and pool.
        self._finalizer = weakref.finalize(self, _close_dropped, self._portal, self._async.aclose)
        self.chat = Chat(self)

    @property
    def async_client(self) -> AsyncClient:
        """The async client underneath (use it only from the portal's loop)."""
        return self._async

    @property
    def config(self) -> Config:
        """The validated configuration this client runs on."""
        return self._async.config

    @property
    def health(self) -> Health:
        """What this client has observed: latency averages, circuit breakers, reachability."""
        return self._async.health

    def model_spec(self, name: str) -> ModelSpec | None:
        """The catalog entry for a model id or alias (or an uncatalogued ``provider/model``)."""
        return self._async.model_spec(name)

    def provider(self, name: str) -> Provider:
        """The provider called *name*, built on first use (its methods are async: call them
        on :attr:`async_client`'s loop, or leave them to the client)."""
        return self._async.provider(name)

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
        self._finalizer.detach()
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

    def refresh_models(self, *, timeout_s: float = 10.0) -> RefreshReport:
        """Read each keyed provider's model list into the cache (see the async twin)."""

        async def refresh() -> RefreshReport:
            return await self._async.refresh_models(timeout_s=timeout_s)

        return self._portal.call(refresh)


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
        check_params({"messages": messages, **params})  # typed refusal before list() below
        call: dict[str, Any] = {"model": model, "messages": list(messages), "stream": stream}
        call.update(params)
        if not stream:
            answer: ChatCompletion = client._portal.call(
                client._async.chat.completions.create, **call
            )
            return answer
        return client._portal.call(self._open_stream, call)

    async def _open_stream(self, call: dict[str, Any]) -> ChatStream:
        """On the portal: open the stream and start its pump, in the one round trip."""
        client = self._client
        inner: AsyncChatStream = await client._async.chat.completions.create(**call)
        stream = _PumpedChatStream(inner, client._portal)
        stream.start()
        return stream

    @overload
    def parse(
        self,
        *,
        model: str = ...,
        messages: MessageInput,
        response_format: type[ModelT],
        **params: Any,
    ) -> ParsedChatCompletion[ModelT]: ...

    @overload
    def parse(
        self,
        *,
        model: str = ...,
        messages: MessageInput,
        response_format: Mapping[str, Any] | None = None,
        **params: Any,
    ) -> ParsedChatCompletion[None]: ...

    def parse(
        self,
        *,
        model: str = "auto",
        messages: MessageInput,
        response_format: type[BaseModel] | Mapping[str, Any] | None = None,
        **params: Any,
    ) -> ParsedChatCompletion[Any]:
        """The answer parsed into *response_format*; see
        :meth:`genrouter.client.AsyncCompletions.parse`."""
        client = self._client
        result: ParsedChatCompletion[Any] = client._portal.call(
            client._async.chat.completions.parse,
            model=model,
            messages=list(messages),
            response_format=response_format,
            **params,
        )
        return result

    @overload
    def stream(
        self,
        *,
        model: str = ...,
        messages: MessageInput,
        response_format: type[ModelT],
        **params: Any,
    ) -> ChatCompletionStreamManager[ModelT]: ...

    @overload
    def stream(
        self,
        *,
        model: str = ...,
        messages: MessageInput,
        response_format: Mapping[str, Any] | None = None,
        **params: Any,
    ) -> ChatCompletionStreamManager[None]: ...

    def stream(
        self,
        *,
        model: str = "auto",
        messages: MessageInput,
        response_format: type[BaseModel] | Mapping[str, Any] | None = None,
        **params: Any,
    ) -> ChatCompletionStreamManager[Any]:
        """A streamed ``parse()`` as events (``with ... as stream: for event in stream``); see
        :meth:`genrouter.client.AsyncCompletions.stream`."""
        from genrouter.structured_stream import ChatCompletionStreamManager, streamed_parse_call

        client = self._client
        call, output = streamed_parse_call(
            model, list(messages), response_format, params, client._async._schemas
        )

        def open_stream() -> ChatStream:
            stream: ChatStream = client._portal.call(self._open_stream, call)
            return stream

        return ChatCompletionStreamManager(open_stream, output, client._async.model_spec)
