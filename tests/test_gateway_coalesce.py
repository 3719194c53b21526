"""The gateway writes stream events that are ready together in one send, and never holds one
back for a later one (genrouter.server.coalesce)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Coroutine, Generator, MutableMapping
from types import SimpleNamespace
from typing import Any

import pytest

from genrouter.server import coalesce
from genrouter.server.app import Gateway
from genrouter.server.coalesce import HeldEvents, next_or_flush
from genrouter.server.metrics import render
from genrouter.server.settings import load_gateway
from genrouter.server.wire import chunk_event
from genrouter.testing import FakeLLMServer, Reply
from genrouter.types import ChatCompletionChunk
from tests.gateway_helpers import FAKE_PROVIDER_KEY, two_upstreams

# -- next_or_flush, without I/O ---------------------------------------------------------------


async def _awaited(
    step: Coroutine[Any, Any, str], flush: Callable[[], Coroutine[Any, Any, None]]
) -> str:
    return await next_or_flush(step, flush)


async def test_a_ready_step_does_not_flush() -> None:
    flushed: list[str] = []

    async def ready() -> str:
        return "chunk"

    async def flush() -> None:
        flushed.append("flush")

    assert await next_or_flush(ready(), flush) == "chunk"
    assert flushed == []


async def test_a_waiting_step_flushes_before_its_wait() -> None:
    order: list[str] = []
    gate = asyncio.Event()

    async def waits() -> str:
        order.append("step starts")
        await gate.wait()
        order.append("step resumes")
        return "chunk"

    async def flush() -> None:
        order.append("flush")
        await asyncio.sleep(0)  # a flush may wait too (flow control)
        order.append("flushed")

    task = asyncio.create_task(_awaited(waits(), flush))
    await asyncio.sleep(0.01)
    assert order == ["step starts", "flush", "flushed"]  # written while the step waits
    gate.set()
    assert await task == "chunk"
    assert order[-1] == "step resumes"


async def test_errors_of_the_step_and_of_the_flush_reach_the_caller() -> None:
    async def broken() -> str:
        await asyncio.sleep(0)
        raise LookupError("upstream broke")

    async def flush() -> None:
        return None

    with pytest.raises(LookupError, match="upstream broke"):
        await next_or_flush(broken(), flush)

    seen: list[str] = []

    async def waits() -> str:
        try:
            await asyncio.sleep(10)
        except OSError:
            seen.append("the step saw the write fail")  # and closes its upstream
            raise
        return "never"

    async def failing_flush() -> None:
        raise OSError("the caller's socket is gone")

    with pytest.raises(OSError, match="socket is gone"):
        await next_or_flush(waits(), failing_flush)
    assert seen == ["the step saw the write fail"]


async def test_cancelling_a_wait_reaches_the_step() -> None:
    seen: list[str] = []

    async def waits() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return "never"

    async def flush() -> None:
        return None

    task = asyncio.create_task(_awaited(waits(), flush))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]


async def test_held_events_are_written_once_in_order_and_never_too_many_at_once() -> None:
    bodies: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        bodies.append(message["body"])

    held = HeldEvents(send)
    events = [f"data: {n}\n\n".encode() for n in range(150)]
    for event in events:
        if held.hold(event):
            await held.flush()
    await held.flush()
    await held.flush()  # nothing held: no empty write
    last = held.last_body(b"data: [DONE]\n\n")
    assert b"".join(bodies) + last == b"".join(events) + b"data: [DONE]\n\n"
    assert all(body for body in bodies)
    assert max(body.count(b"data: ") for body in bodies) <= coalesce._MOST_HELD
    assert len(bodies) >= 150 // coalesce._MOST_HELD


async def test_an_event_is_not_held_past_the_hold_time(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(coalesce, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    held = HeldEvents(_discard)
    assert held.hold(b"data: 1\n\n") is False  # the first held starts the clock
    now[0] += coalesce._HOLD_S / 2
    assert held.hold(b"data: 2\n\n") is False
    now[0] += coalesce._HOLD_S
    assert held.hold(b"data: 3\n\n") is True  # the oldest has waited long enough: write
    await held.flush()
    now[0] += 10 * coalesce._HOLD_S  # idle time between writes does not count
    assert held.hold(b"data: 4\n\n") is False
    assert held.hold(b"data: 5\n\n") is False


async def _discard(message: dict[str, Any]) -> None:
    return None


def test_chunk_event_is_model_dump_json_framed() -> None:
    chunk = ChatCompletionChunk.model_validate(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "content": 'é\n"x"',
                        "tool_calls": [
                            {"index": 0, "id": "t", "function": {"name": "f", "arguments": "{"}}
                        ],
                    },
                    "finish_reason": None,
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            "vendor_extra": {"kept": True},
        }
    )
    assert chunk_event(chunk) == b"data: " + chunk.model_dump_json().encode() + b"\n\n"


# -- the gateway over a real upstream --------------------------------------------------------


def _sse_body(pieces: list[str]) -> bytes:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    events += [{**base, "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    return body + b"data: [DONE]\n\n"


class _Recorded:
    """One ASGI call's ``http.response.body`` messages, with when each was sent."""

    def __init__(self) -> None:
        self.bodies: list[tuple[float, bytes]] = []

    def events(self) -> list[bytes]:
        data = b"".join(body for _, body in self.bodies)
        return [event for event in data.split(b"\n\n") if event]


async def _stream_through(gateway: Gateway) -> _Recorded:
    body = json.dumps(
        {"model": "default", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    scope = {"type": "http", "path": "/v1/chat/completions", "method": "POST", "headers": []}
    sent_body = asyncio.Event()
    answered = asyncio.Event()
    recorded = _Recorded()

    async def receive() -> dict[str, Any]:
        if not sent_body.is_set():
            sent_body.set()
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            recorded.bodies.append((time.monotonic(), message["body"]))

    await gateway(scope, receive, send)
    answered.set()
    return recorded


def _gateway(server: FakeLLMServer) -> Gateway:
    env = {"UP_KEY": FAKE_PROVIDER_KEY}
    url = server.openai_base_url
    return Gateway(load_gateway(two_upstreams(url, url), env=env), env=env)


@pytest.fixture
def upstream() -> Generator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


async def test_events_read_together_go_out_in_few_writes_each_once_in_order(
    upstream: FakeLLMServer,
) -> None:
    pieces = [f"w{n} " for n in range(30)]
    upstream.enqueue(Reply(body_200=_sse_body(pieces)))  # the whole stream in one write
    gateway = _gateway(upstream)
    await gateway.startup()
    try:
        recorded = await _stream_through(gateway)
    finally:
        await gateway.shutdown()
    events = recorded.events()
    assert events[-1] == b"data: [DONE]"
    chunks = [json.loads(event.removeprefix(b"data: ")) for event in events[:-1]]
    texts = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert [t for t in texts if t] == pieces  # every piece exactly once, in order
    assert len(events) == len(pieces) + 3  # role, pieces, finish, [DONE]
    # The first event alone (time to first token), then the rest in few writes.
    assert recorded.bodies[0][1].count(b"data: ") == 1
    assert len(recorded.bodies) < len(events) // 2


async def test_a_slow_upstreams_events_are_each_written_before_the_next_arrives(
    upstream: FakeLLMServer,
) -> None:
    gap = 0.3
    pieces = ["one ", "two ", "three ", "four"]
    upstream.enqueue(Reply(chunks=pieces, delay_between_chunks_s=gap))
    gateway = _gateway(upstream)
    await gateway.startup()
    try:
        recorded = await _stream_through(gateway)
    finally:
        await gateway.shutdown()
    # Had any piece waited for the next one, the two would share a write.
    content_writes = [
        (at, body) for at, body in recorded.bodies if any(p.encode() in body for p in pieces)
    ]
    for piece in pieces:
        assert sum(piece.encode() in body for _, body in content_writes) == 1
    assert len(content_writes) == len(pieces)
    times = [at for at, _ in content_writes]
    assert all(later - earlier > gap / 2 for earlier, later in itertools.pairwise(times))


async def test_held_events_precede_the_error_event_of_a_stream_that_breaks(
    upstream: FakeLLMServer,
) -> None:
    pieces = [f"w{n} " for n in range(12)]
    body = _sse_body(pieces).split(b'data: {"id": "chatcmpl-1"', 14)
    broken = b'data: {"id": "chatcmpl-1"'.join(body[:14])  # role + 12 pieces, no finish
    error = {"error": {"message": "upstream overloaded", "type": "server_error", "code": None}}
    broken += b"data: " + json.dumps(error).encode() + b"\n\n"
    upstream.enqueue(Reply(body_200=broken))  # all of it in one read
    gateway = _gateway(upstream)
    await gateway.startup()
    try:
        recorded = await _stream_through(gateway)
    finally:
        await gateway.shutdown()
    events = recorded.events()
    assert b"data: [DONE]" not in events
    assert json.loads(events[-1].removeprefix(b"data: "))["error"]["code"] == "stream_interrupted"
    chunks = [json.loads(event.removeprefix(b"data: ")) for event in events[:-1]]
    texts = [c["choices"][0]["delta"].get("content") for c in chunks]
    assert [t for t in texts if t] == pieces


# -- watching for the caller going away --------------------------------------------------------


def _chunk(text: str, finish: str | None = None) -> ChatCompletionChunk:
    choice = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
    return ChatCompletionChunk(id="c", created=1, model="m", choices=[choice])


class _Caller:
    """An ASGI caller that sends one streamed request; ``receive()`` after it says whether the
    caller is still there (``gone``), as uvicorn's does. A ``slow`` caller's writes wait (as
    uvicorn's ``send`` does when the caller reads slower than the gateway writes)."""

    def __init__(self, *, gone: bool, slow: bool = False) -> None:
        self.gone = gone
        self.slow = slow
        self.receives = 0
        self.status: int | None = None
        self.body = b""

    async def receive(self) -> dict[str, Any]:
        self.receives += 1
        if self.receives == 1:
            body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            return {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}
        if self.gone:
            return {"type": "http.disconnect"}
        await asyncio.Event().wait()  # still there: nothing more to say
        raise AssertionError("unreachable")

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        else:
            self.body += message.get("body", b"")
        if self.slow:
            await asyncio.sleep(0)


def _gateway_streaming(chunks: Callable[[], Any]) -> Gateway:
    """A gateway whose client answers every streamed request with *chunks()* (in memory)."""
    from genrouter.streaming import AsyncChatStream
    from genrouter.types import RouteInfo

    gateway = _gateway_without_upstream()

    async def create(**_params: Any) -> AsyncChatStream:
        return AsyncChatStream(chunks(), RouteInfo(route="m", model="m", provider="p"))

    fake = SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=create)))
    gateway._client = fake  # type: ignore[assignment]
    return gateway


def _gateway_without_upstream() -> Gateway:
    url = "http://127.0.0.1:9/v1"  # never called
    env = {"UP_KEY": FAKE_PROVIDER_KEY}
    return Gateway(load_gateway(two_upstreams(url, url), env=env), env=env)


async def _serve(gateway: Gateway, caller: _Caller) -> None:
    scope = {"type": "http", "path": "/v1/chat/completions", "method": "POST", "headers": []}
    await asyncio.wait_for(gateway(scope, caller.receive, caller.send), timeout=10)


async def test_a_stream_whose_chunks_are_all_ready_never_waits_on_the_caller() -> None:
    async def ready() -> Any:
        for n in range(20):
            yield _chunk(f"w{n} ")
        yield _chunk("", finish="stop")

    caller = _Caller(gone=False)
    await _serve(_gateway_streaming(ready), caller)
    assert caller.status == 200
    assert caller.body.endswith(b"data: [DONE]\n\n")
    assert caller.body.count(b"data: ") == 22
    assert caller.receives == 1  # the request's body only: no watching task was started


async def test_a_caller_gone_by_the_first_wait_closes_the_stream_there() -> None:
    closed = asyncio.Event()

    async def stalls() -> Any:
        try:
            yield _chunk("first ")
            yield _chunk("second ")
            await asyncio.sleep(30)  # the upstream pauses: the caller is watched from here
            yield _chunk("never", finish="stop")
        finally:
            closed.set()

    caller = _Caller(gone=True)
    gateway = _gateway_streaming(stalls)
    await _serve(gateway, caller)
    assert closed.is_set()
    assert caller.receives == 2
    assert b"first" in caller.body and b"second" in caller.body and b"never" not in caller.body
    assert 'status="499"' in render(gateway.metrics, []).decode()  # counted as gone


async def test_a_caller_gone_while_a_write_waits_closes_the_stream_there() -> None:
    closed = asyncio.Event()

    async def ready() -> Any:
        try:
            for n in range(200):
                yield _chunk(f"w{n} ")
            yield _chunk("", finish="stop")
        finally:
            closed.set()

    caller = _Caller(gone=True, slow=True)
    gateway = _gateway_streaming(ready)
    await _serve(gateway, caller)
    assert closed.is_set()
    assert caller.receives == 2  # watched from the first write that had to wait
    assert b"w199" not in caller.body  # closed there: the rest was never written
    assert 'status="499"' in render(gateway.metrics, []).decode()
