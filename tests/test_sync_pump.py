"""The sync ``Client``'s hand-off to its portal and the pump behind a sync stream
(genrouter.sync): what a caller sees when it stops reading, presses Ctrl-C, or another
thread closes the client."""

from __future__ import annotations

import _thread
import asyncio
import gc
import random
import threading
import time

import pytest

from genrouter import GenRouterError
from genrouter.errors import ProviderConnectionError, StreamInterruptedError
from genrouter.sync import _AHEAD
from tests.test_sync_stream_batches import Scripted, _client, _open


def _wait_until(condition: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


class Counting(Scripted):
    """:class:`Scripted` that counts the pieces it has yielded."""

    def __init__(self, pieces: list[str], **kwargs: object) -> None:
        super().__init__(pieces, **kwargs)  # type: ignore[arg-type]
        self.yielded = 0

    async def stream(self, call):  # type: ignore[no-untyped-def]
        async for chunk in super().stream(call):
            self.yielded += 1
            yield chunk


def test_calls_from_many_threads_each_get_their_own_answer() -> None:
    with _client(Scripted([])) as client:
        portal = client._portal
        wrong: list[tuple[int, int]] = []

        async def echo(value: int) -> int:
            await asyncio.sleep(random.random() / 1000)
            return value

        def work(base: int) -> None:
            for i in range(30):
                got = portal.call(echo, base + i)
                if got != base + i:
                    wrong.append((base + i, got))

        threads = [threading.Thread(target=work, args=(k * 1000,)) for k in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert wrong == []


def test_an_error_raised_on_the_portal_reaches_the_caller_as_it_was() -> None:
    with _client(Scripted([])) as client:

        async def fail() -> None:
            raise ProviderConnectionError("down", provider="mine", model="m1")

        with pytest.raises(ProviderConnectionError, match="down") as caught:
            client._portal.call(fail)
        assert caught.value.provider == "mine"
        assert client._portal.call(asyncio.sleep, 0, result=7) == 7  # and the next call works


def test_the_pump_reads_at_most_a_bounded_number_of_chunks_ahead() -> None:
    pieces = [f"t{i} " for i in range(5 * _AHEAD)]
    provider = Counting(pieces)
    with _client(provider) as client:
        stream = _open(client)
        with stream:
            first = next(stream)
            assert _wait_until(lambda: provider.yielded >= _AHEAD)
            time.sleep(0.2)  # a pump that does not park would read on meanwhile
            assert provider.yielded <= _AHEAD + 2
            texts = [first.choices[0].delta.content] + [
                c.choices[0].delta.content for c in stream if c.choices
            ]
        assert texts == [*pieces, None]  # resumed each time, nothing lost or repeated


def test_ctrl_c_while_a_sync_stream_waits_stops_the_read_and_the_client_stays_usable() -> None:
    provider = Scripted(["a", "b"], wait_at=1)  # "b" never comes: the gate stays shut
    with _client(provider) as client:
        stream = _open(client)
        assert next(stream).choices[0].delta.content == "a"
        timer = threading.Timer(0.3, _thread.interrupt_main)
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                next(stream)
        finally:
            timer.cancel()
        # The read underneath was cancelled and had unwound before the interrupt surfaced.
        assert provider.closed
        assert stream.route.attempts[-1].outcome == "cancelled"
        assert list(stream) == []
        stream.close()
        again = _open(client)
        provider.gate.set()
        with again:
            assert [c.choices[0].delta.content for c in again if c.choices] == ["a", "b", None]


def test_close_from_another_thread_wakes_a_reader_waiting_for_a_chunk() -> None:
    provider = Scripted(["a", "b"], wait_at=1)
    client = _client(provider)
    stream = _open(client)
    assert next(stream).choices[0].delta.content == "a"
    caught: list[BaseException] = []

    def read() -> None:
        try:
            next(stream)
        except BaseException as error:
            caught.append(error)

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.2)  # the reader now blocks on the pump's queue
    started = time.monotonic()
    client.close()
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert time.monotonic() - started < 8
    assert len(caught) == 1 and isinstance(caught[0], GenRouterError)
    assert "closed" in str(caught[0])
    assert provider.closed
    with pytest.raises(GenRouterError, match="closed"):
        next(stream)
    stream.close()  # a no-op once the client is closed


def test_a_stream_dropped_unread_has_its_pump_stopped() -> None:
    provider = Scripted([f"t{i} " for i in range(3 * _AHEAD)])
    with _client(provider) as client:
        stream = _open(client)
        pipe = stream._pipe  # type: ignore[attr-defined]
        task = pipe.task
        assert task is not None
        assert _wait_until(lambda: pipe.park is not None)  # parked: _AHEAD chunks unread
        del stream
        gc.collect()
        assert _wait_until(task.done)
        assert _wait_until(lambda: provider.closed)


def test_until_done_raises_an_error_the_caller_has_not_read_yet() -> None:
    with _client(Scripted(["a", "b"], fail=True)) as client:
        stream = _open(client)
        assert next(stream).choices[0].delta.content == "a"
        assert _wait_until(lambda: stream._pipe.task.done())  # type: ignore[attr-defined]
        with pytest.raises(StreamInterruptedError) as caught:
            stream.until_done()
        assert caught.value.partial_text == "ab"


def test_closing_a_stream_that_ended_needs_no_round_trip() -> None:
    with _client(Scripted(["a", "b"])) as client:
        stream = _open(client)
        assert len(list(stream)) == 3
        calls: list[object] = []
        real = client._portal.call

        def counting(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
            calls.append(fn)
            return real(fn, *args, **kwargs)

        client._portal.call = counting  # type: ignore[method-assign]
        stream.close()
        assert calls == []
        assert stream.get_final_completion().choices[0].message.content == "ab"
