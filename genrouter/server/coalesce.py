"""Write a stream's events in as few socket writes as possible, without delaying any of them.

One ASGI ``send`` is one socket write (a system call): at one event per send, the writes were
about 13 % of the gateway's CPU per stream. Upstream events mostly arrive several to one
network read (always when the upstream writes faster than the gateway reads), yet the layers
between the socket and the gateway (the HTTP client's parser, the SSE decoder, the executor's
buffered first chunks) hand them on one at a time, and none of them can tell whether the next
one is already there. The event loop can: asking for the next chunk either completes at once
(it was ready) or has to wait. :func:`next_or_flush` asks, and only when the next chunk has to
wait does it write what is held, before the wait. So an event is never held back for a later
one: it is written as soon as the gateway would otherwise go idle.

The time a held write waits for a slow caller to read (transport flow control) falls inside the
upstream chunk's wait, and so counts toward the stream's idle and deadline clocks, as any time
the caller makes the gateway wait does.
"""

from __future__ import annotations

import asyncio
import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, TypeVar

__all__ = ["HeldEvents", "finish", "flush_then_finish", "next_or_flush"]

T = TypeVar("T")

Send = Callable[[dict[str, Any]], Awaitable[None]]

# A held event waits while the gateway handles the ones behind it (~10 us each here): it is
# written once this many are held, or once the oldest has been held this long, whichever
# comes first, so however busy the machine, no event waits much longer than that for a write.
_MOST_HELD = 64
_HOLD_S = 0.0005


class HeldEvents:
    """A stream's encoded events not yet written: :meth:`hold` one, :meth:`flush` them."""

    __slots__ = ("_events", "_send", "_since")

    def __init__(self, send: Send) -> None:
        self._send = send
        self._events: list[bytes] = []
        self._since = 0.0  # when the oldest held event was held

    def hold(self, event: bytes) -> bool:
        """Keep *event* for the next write; whether it is time to write them now."""
        events = self._events
        events.append(event)
        if len(events) == 1:
            self._since = time.perf_counter()
            return False
        return len(events) >= _MOST_HELD or time.perf_counter() - self._since >= _HOLD_S

    async def flush(self) -> None:
        """Write the held events, if any, in one ``http.response.body`` message."""
        if self._events:
            body = b"".join(self._events)
            self._events.clear()
            await self._send({"type": "http.response.body", "body": body, "more_body": True})

    def last_body(self, tail: bytes) -> bytes:
        """The held events followed by *tail*: the stream's last write."""
        body = b"".join(self._events) + tail
        self._events.clear()
        return body


@types.coroutine
def next_or_flush(
    step: Coroutine[Any, Any, T], flush: Callable[[], Coroutine[Any, Any, None]]
) -> Generator[Any, Any, T]:
    """Await *step*; if it cannot complete without waiting, await ``flush()`` first.

    ``await next_or_flush(stream.__anext__(), flush)`` gives what ``await stream.__anext__()``
    gives (value or exception), the same way: the step's waits, cancellation included, pass
    through unchanged (this is ``yield from`` with its first step looked at). An exception from
    *flush* is thrown into the step at its wait, as a cancellation would be, so that the stream
    closes its upstream; then it propagates.
    """
    try:
        signal = step.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]  # ready: nothing to flush
    return (yield from flush_then_finish(step, signal, flush))


@types.coroutine
def flush_then_finish(
    step: Coroutine[Any, Any, T], signal: Any, flush: Callable[[], Coroutine[Any, Any, None]]
) -> Generator[Any, Any, T]:
    """The rest of :func:`next_or_flush` once *step*'s first ``send(None)`` gave *signal* (it
    has to wait): ``flush()``, then the step to its end. A caller that took the first step
    itself (the gateway's relay, for the chunks that are ready: no coroutine around them)
    awaits this for the ones that are not."""
    # The step waits for something (a read, most likely): write what is held first.
    try:
        yield from flush().__await__()
    except BaseException as exc:  # handed to the step, which re-raises it
        if asyncio.isfuture(signal):
            signal.cancel()  # its wait is over, as a cancelled task's would be
        try:
            signal = step.throw(exc)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
    return (yield from finish(step, signal))


@types.coroutine
def finish(step: Coroutine[Any, Any, T], signal: Any) -> Generator[Any, Any, T]:
    """Await the rest of *step*, whose first ``send(None)`` gave *signal* (it has to wait):
    ``yield from`` with that first step already taken, its waits and cancellation passed
    through unchanged."""
    while True:
        try:
            value = yield signal
        except GeneratorExit:
            step.close()
            raise
        except BaseException as exc:  # cancellation, passed on
            try:
                signal = step.throw(exc)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
        else:
            try:
                signal = step.send(value)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
