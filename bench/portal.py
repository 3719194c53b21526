"""What the sync ``Client``'s portal costs per call: as shipped (anyio's blocking portal with
genrouter's own one-hop hand-off), the hand-written event-loop thread genrouter had before,
and anyio's portal with every call through anyio's ``start_task_soon`` (both kept here only
to compare).

In process (no sockets), taking turns call by call:

1. the bare hand-off: ``portal.call`` of a coroutine that returns at once;
2. ``Client.chat.completions.create`` against an in-process provider;
3. a streamed answer of 35 chunks through ``ChatStream`` (one portal call per chunk).

Prints medians and p90 in microseconds and each median's ratio to the hand-written portal's.
On a loaded machine compare two at a time (``--kinds own,shipped``): fewer turns, less noise.

    python bench/portal.py [-n 1000] [--warmup 100] [--kinds own,shipped,anyio]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import statistics
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from genrouter.errors import GenRouterError
from genrouter.params import MessageParam
from genrouter.providers.base import ProviderCall
from genrouter.sync import Client, _Portal
from genrouter.types import ChatCompletion, ChatCompletionChunk

T = TypeVar("T")
MESSAGES: list[MessageParam] = [{"role": "user", "content": "Say hello"}]
CHUNKS = 35


class LegacyPortal:
    """genrouter's hand-written portal before anyio's (e0a716e, verbatim but for the name).

    An event loop on its own thread; :meth:`call` runs a coroutine there and waits.

    Closing is safe against calls on other threads: from the moment :meth:`close` starts, new
    calls (and the next chunk of an open stream) raise; calls in flight are cancelled and
    raise; and any call whose work could not run is woken with an error, so no thread is left
    blocked.
    """

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
        self._stopping = False
        self._in_flight: set[concurrent.futures.Future[Any]] = set()
        self._in_flight_lock = threading.Lock()

    @property
    def closed(self) -> bool:
        return self._closed or self._stopping

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        if self._stopping or self._closed:
            raise GenRouterError("this client is closed")
        if threading.current_thread() is self._thread:
            raise GenRouterError("a sync genrouter Client cannot be used from its own hooks")

        running: list[asyncio.Task[Any] | None] = []

        async def run() -> T:
            running.append(asyncio.current_task())
            return await fn(*args, **kwargs)

        coro: Coroutine[Any, Any, T] = run()
        with self._in_flight_lock:
            if self._stopping:
                coro.close()
                raise GenRouterError("this client is closed")
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
            self._in_flight.add(future)
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
        finally:
            with self._in_flight_lock:
                self._in_flight.discard(future)
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
        """Refuse new calls, cancel work in flight, close open streams, run *aclose*, then
        stop the thread (and the loop's worker threads)."""
        with self._closing:
            if self._closed:
                return
            with self._in_flight_lock:
                self._stopping = True

            async def shutdown() -> None:
                current = asyncio.current_task()
                pending = [t for t in asyncio.all_tasks() if t is not current]
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                await self._loop.shutdown_asyncgens()  # streams the caller left open
                await aclose()
                await self._loop.shutdown_default_executor()

            try:
                asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=30)
            finally:
                self._closed = True
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=5)
                with self._in_flight_lock:
                    stranded, self._in_flight = list(self._in_flight), set()
                for future in stranded:
                    future.cancel()  # its work never ran: wake its caller with an error
                if not self._thread.is_alive():
                    self._loop.close()


def _chunk(index: int, content: str | None, finish: str | None) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": content} if content else {},
                    "finish_reason": finish,
                }
            ],
        }
    )


PIECES = [_chunk(i, f"w{i} ", None) for i in range(CHUNKS)] + [_chunk(CHUNKS, None, "stop")]
ANSWER = ChatCompletion.model_validate(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hello"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
)


class BenchProvider:
    """Answers at once, whole or in :data:`CHUNKS` pieces."""

    name = "p"
    base_url = "https://p.example.invalid/v1"
    is_remote = True

    def has_credentials(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None

    async def complete(self, call: ProviderCall) -> ChatCompletion:
        return ANSWER

    async def stream(self, call: ProviderCall) -> AsyncIterator[ChatCompletionChunk]:
        for piece in PIECES:
            yield piece


async def _nothing() -> None:
    return None


class FuturesPortal(_Portal):
    """The shipped portal with the hand-off it had before: ``asyncio.run_coroutine_threadsafe``
    and a ``concurrent.futures.wait`` loop (kept here only to compare; it never closes with
    calls in flight, so its futures stay out of ``_in_flight``)."""

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        if self.closed:
            raise GenRouterError("this client is closed")
        running: list[asyncio.Task[Any]] = []

        async def run() -> T:
            task = asyncio.current_task()
            assert task is not None
            running.append(task)
            return await fn(*args, **kwargs)

        future = asyncio.run_coroutine_threadsafe(run(), self._loop)
        try:
            while not future.done():
                concurrent.futures.wait([future], timeout=self._WAKE_S)
        except BaseException:
            if running:
                self._loop.call_soon_threadsafe(running[0].cancel)
                concurrent.futures.wait([future], timeout=self._UNWIND_S)
            else:
                future.cancel()
            raise
        return future.result()


class AnyioCallPortal(_Portal):
    """The shipped portal, but every call through anyio's ``BlockingPortal.start_task_soon``
    (the first version of this change: cancellation through anyio's future)."""

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        if self.closed:
            raise GenRouterError("this client is closed")
        ended = threading.Event()

        async def run() -> T:
            try:
                return await fn(*args, **kwargs)
            finally:
                ended.set()

        future = self._portal.start_task_soon(run)
        try:
            while not future.done():
                concurrent.futures.wait([future], timeout=self._WAKE_S)
        except BaseException:
            if future.cancel():
                ended.wait(self._UNWIND_S)
            raise
        return future.result()


KINDS = {
    "own": "hand-written (before)",
    "futures": "anyio portal + run_coroutine_threadsafe",
    "shipped": "anyio portal + lock hand-off (shipped)",
    "anyio": "anyio portal, anyio's call",
}


def _client(kind: str) -> Client:
    config = {
        "providers": {"p": {"type": "custom"}},
        "models": {"p/m": {}},
        "routes": {"default": {"candidates": ["p/m"]}},
    }
    client = Client(config, providers={"p": BenchProvider()}, env={}, model_cache=False)
    if kind != "shipped":
        client._finalizer.detach()
        client._portal.close(_nothing)  # the async client stays open for the other portal
        portals = {"own": LegacyPortal, "futures": FuturesPortal, "anyio": AnyioCallPortal}
        client._portal = portals[kind]()  # type: ignore[assignment]
    return client


def _summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(samples), ordered[int(0.9 * (len(ordered) - 1))]


async def _noop() -> None:
    return None


def _rows(client: Client) -> dict[str, Callable[[], None]]:
    portal = client._portal

    def hand_off() -> None:
        portal.call(_noop)

    def ask() -> None:
        client.chat.completions.create(model="default", messages=MESSAGES)

    def read() -> None:
        with client.chat.completions.create(
            model="default", messages=MESSAGES, stream=True
        ) as chunks:
            for _ in chunks:
                pass

    return {"hand-off (portal.call)": hand_off, "create()": ask, f"stream, {CHUNKS} chunks": read}


def run(n: int, warmup: int, kinds: list[str]) -> None:
    clients = {kind: _client(kind) for kind in kinds}
    rows = {kind: _rows(client) for kind, client in clients.items()}
    labels = list(rows["own"])
    times: dict[tuple[str, str], list[float]] = {}
    try:
        for index in range(warmup + n):
            shift = index % len(kinds)
            turn = kinds[shift:] + kinds[:shift]  # none always goes first
            for label in labels:
                for kind in turn:
                    started = time.perf_counter_ns()
                    rows[kind][label]()
                    if index >= warmup:
                        sample = (time.perf_counter_ns() - started) / 1000
                        times.setdefault((label, kind), []).append(sample)
    finally:
        for client in clients.values():
            client._portal.close(client._async.aclose)
    report(labels, times, kinds)


def report(labels: list[str], times: dict[tuple[str, str], list[float]], kinds: list[str]) -> None:
    print(f"{'row':62s} {'median µs':>10s} {'p90 µs':>9s} {'ratio':>6s}")
    for label in labels:
        base, _ = _summary(times[(label, "own")])
        for kind in kinds:
            name = KINDS[kind]
            median, p90 = _summary(times[(label, kind)])
            print(f"{label + ': ' + name:62s} {median:10.1f} {p90:9.1f} {median / base:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help="which portals take turns, from: " + ", ".join(KINDS) + " ('own' is the baseline)",
    )
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    if "own" not in kinds or not set(kinds) <= set(KINDS):
        parser.error(f"--kinds: a comma-separated subset of {', '.join(KINDS)} including 'own'")
    run(args.n, args.warmup, kinds)


if __name__ == "__main__":
    main()
