"""The sync ``Client``'s stream brings chunks back from its portal in batches (genrouter.sync).

What the caller sees must not change: every chunk once and in order, a chunk that arrives
later is not held back for others, an error after the chunks before it, and ``close()`` /
``until_done()`` work wherever the stream stands.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest

from genrouter import Client
from genrouter.errors import ProviderConnectionError, StreamInterruptedError
from genrouter.params import MessageParam
from genrouter.providers.base import ProviderCall
from genrouter.streaming import ChatStream
from genrouter.types import ChatCompletion, ChatCompletionChunk

MESSAGES: list[MessageParam] = [{"role": "user", "content": "hi"}]
CONFIG = {
    "providers": {"mine": {"type": "custom"}},
    "models": {"mine/m1": {"context_window": 8192}},
}


def _chunk(text: str | None, finish: str | None = None) -> ChatCompletionChunk:
    delta = {} if text is None else {"content": text}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return ChatCompletionChunk.model_validate(
        {"id": "c", "created": 1, "model": "m1", "choices": [choice]}
    )


class Scripted:
    """Yields ``pieces``; waits for ``gate`` before piece ``wait_at``; may fail at the end."""

    name = "mine"
    is_remote = False

    def __init__(self, pieces: list[str], *, wait_at: int | None = None, fail: bool = False):
        self.pieces = pieces
        self.wait_at = wait_at
        self.fail = fail
        self.gate = threading.Event()
        self.closed = False

    def has_credentials(self) -> bool:
        return True

    async def complete(self, call: ProviderCall) -> ChatCompletion:
        raise NotImplementedError

    async def stream(self, call: ProviderCall) -> AsyncIterator[ChatCompletionChunk]:
        try:
            for index, piece in enumerate(self.pieces):
                if index == self.wait_at:
                    while not self.gate.is_set():
                        await asyncio.sleep(0.005)
                yield _chunk(piece)
            if self.fail:
                raise ProviderConnectionError("cut", provider="mine", model="m1")
            yield _chunk(None, "stop")
        finally:
            self.closed = True

    async def aclose(self) -> None:
        return None


def _client(provider: Scripted) -> Client:
    return Client(CONFIG, env={}, providers={"mine": provider}, tracing=False, metrics=False)


def _open(client: Client) -> ChatStream:
    return client.chat.completions.create(model="mine/m1", messages=MESSAGES, stream=True)


def test_every_chunk_once_in_order() -> None:
    pieces = [f"t{i} " for i in range(150)]  # more than one batch
    with _client(Scripted(pieces)) as client:
        stream = _open(client)
        with stream:
            texts = [c.choices[0].delta.content for c in stream if c.choices]
        assert texts == [*pieces, None]
        assert stream.get_final_completion().choices[0].message.content == "".join(pieces)


def test_a_ready_chunk_is_not_held_back_for_a_later_one() -> None:
    provider = Scripted(["a", "b", "c"], wait_at=2)
    with _client(provider) as client:
        stream = _open(client)
        with stream:
            # "c" waits for the gate: "a" and "b" must arrive without it.
            assert next(stream).choices[0].delta.content == "a"
            assert next(stream).choices[0].delta.content == "b"
            provider.gate.set()
            assert next(stream).choices[0].delta.content == "c"
            assert [c.choices[0].finish_reason for c in stream] == ["stop"]


def test_an_error_comes_after_the_chunks_before_it() -> None:
    with _client(Scripted(["a", "b"], fail=True)) as client:
        stream = _open(client)
        seen: list[str | None] = []
        with pytest.raises(StreamInterruptedError) as caught, stream:
            for chunk in stream:
                seen.append(chunk.choices[0].delta.content)
        assert seen == ["a", "b"]
        assert caught.value.partial_text == "ab"


def test_close_while_a_read_waits_on_the_portal() -> None:
    provider = Scripted(["a", "b"], wait_at=1)
    with _client(provider) as client:
        stream = _open(client)
        assert next(stream).choices[0].delta.content == "a"  # "b" is being waited for
        stream.close()
        assert provider.closed
        assert list(stream) == []
        assert stream.route is not None
        assert stream.route.attempts[-1].outcome == "cancelled"


def test_until_done_after_part_of_the_stream() -> None:
    provider = Scripted(["a", "b", "c"], wait_at=1)
    with _client(provider) as client:
        stream = _open(client)
        assert next(stream).choices[0].delta.content == "a"
        provider.gate.set()
        assert stream.until_done().choices[0].message.content == "abc"
        assert list(stream) == []
