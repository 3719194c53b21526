"""An in-process scripted provider for routing tests (no sockets; the fake server covers wire)."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from genrouter.providers.base import ProviderCall
from genrouter.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    Choice,
    ChoiceDelta,
    ChunkChoice,
    Usage,
)


@dataclass
class Step:
    """One scripted answer: text (in pieces when streamed), or an error, with optional delays."""

    text: str = "ok"
    pieces: Sequence[str] | None = None
    error: Exception | None = None
    fail_after: int | None = None  # stream: raise `error` after this many pieces
    delay_s: float = 0.0  # before the answer / before the first piece
    usage: Usage | None = None


@dataclass
class ScriptedProvider:
    """Answers from a per-model script (FIFO); an empty script answers ``ok``."""

    name: str
    remote: bool = True
    credentials: bool = True
    base_url: str = ""  # default: https://<name>.example.invalid/v1 (one host per provider)
    scripts: dict[str, deque[Step]] = field(default_factory=lambda: defaultdict(deque))
    calls: list[ProviderCall] = field(default_factory=list)
    open_streams: int = 0
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        if not self.base_url:
            self.base_url = f"https://{self.name}.example.invalid/v1"

    def script(self, model: str, *steps: Step) -> None:
        self.scripts[model].extend(steps)

    @property
    def is_remote(self) -> bool:
        return self.remote

    def has_credentials(self) -> bool:
        return self.credentials

    def _next(self, call: ProviderCall) -> Step:
        self.calls.append(call)
        queue = self.scripts.get(call.model.model)
        return queue.popleft() if queue else Step()

    def _usage(self, step: Step) -> Usage:
        if step.usage is not None:
            return step.usage
        words = len(step.text.split())
        return Usage(prompt_tokens=10, completion_tokens=words, total_tokens=10 + words)

    async def complete(self, call: ProviderCall) -> ChatCompletion:
        step = self._next(call)
        if step.delay_s:
            await asyncio.sleep(step.delay_s)
        if step.error is not None:
            raise step.error
        return ChatCompletion(
            id=f"chatcmpl-{next(self._ids)}",
            created=0,
            model=call.model.model,
            choices=[
                Choice(message=ChatCompletionMessage(content=step.text), finish_reason="stop")
            ],
            usage=self._usage(step),
        )

    async def stream(self, call: ProviderCall) -> AsyncIterator[ChatCompletionChunk]:
        step = self._next(call)
        cid = f"chatcmpl-{next(self._ids)}"
        self.open_streams += 1
        try:
            if step.delay_s:
                await asyncio.sleep(step.delay_s)
            if step.error is not None and step.fail_after is None:
                raise step.error
            yield _chunk(cid, call, ChoiceDelta(role="assistant"))
            pieces = list(step.pieces) if step.pieces is not None else [step.text]
            for index, piece in enumerate(pieces):
                if step.fail_after is not None and index == step.fail_after:
                    assert step.error is not None
                    raise step.error
                yield _chunk(cid, call, ChoiceDelta(content=piece))
            yield ChatCompletionChunk(
                id=cid,
                created=0,
                model=call.model.model,
                choices=[ChunkChoice(delta=ChoiceDelta(), finish_reason="stop")],
            )
            yield ChatCompletionChunk(
                id=cid, created=0, model=call.model.model, choices=[], usage=self._usage(step)
            )
        finally:
            self.open_streams -= 1

    async def aclose(self) -> None:
        return None


def _chunk(cid: str, call: ProviderCall, delta: ChoiceDelta) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id=cid, created=0, model=call.model.model, choices=[ChunkChoice(delta=delta)]
    )


class ManualClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
