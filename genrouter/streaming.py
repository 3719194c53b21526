"""Stream objects handed to callers: iterate chunks, then read the assembled completion.

``AsyncChatStream`` is an async iterator and async context manager; leaving the ``async with``
block (or calling :meth:`AsyncChatStream.aclose`) closes the provider's connection, also when
the caller stops early or is cancelled. ``ChatStream`` is the same for the sync ``Client``.

Chunks reach the caller as the openai SDK yields them: genrouter asks providers for usage
whenever it can (route info and cost need it), but the usage-only chunk (``choices == []``)
is handed on only when the caller asked for it with ``stream_options={"include_usage": True}``,
then once, at the end, with the usage of the whole answer (summed over a resumed stream's
attempts), and every other chunk has ``usage=None``, as OpenAI sends them. Usage is always on
:meth:`AsyncChatStream.get_final_completion` and ``stream.route.usage``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from genrouter.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionMessageToolCall,
    Choice,
    ChoiceDeltaToolCall,
    Function,
    RouteInfo,
    Usage,
)

if TYPE_CHECKING:
    from genrouter.sync import _Portal

__all__ = ["AsyncChatStream", "ChatStream", "CompletionAccumulator"]


@dataclass(slots=True)
class _ChoiceParts:
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None


class CompletionAccumulator:
    """Folds chunks into one :class:`ChatCompletion` (content, reasoning, tool calls, usage)."""

    __slots__ = ("_choices", "_created", "_id", "_model", "_usage")

    def __init__(self) -> None:
        self._id = ""
        self._created = 0
        self._model = ""
        self._choices: dict[int, _ChoiceParts] = {}
        self._usage: Usage | None = None

    def add(self, chunk: ChatCompletionChunk) -> None:
        """Fold in *chunk*: its choices and, when it carries one, its usage."""
        self.add_choices(chunk)
        if chunk.usage is not None:
            self._usage = _add_usage(self._usage, chunk.usage)

    def add_choices(self, chunk: ChatCompletionChunk) -> bool:
        """Fold in *chunk*'s choices (not its usage); whether choice 0 finished in it.

        The executor calls this once per chunk it hands on (the one pass over a chunk's
        choices that the stream makes) and adds usage itself, once, at the end.
        """
        if not self._id:
            self._id, self._created = chunk.id, chunk.created
        self._model = chunk.model
        finished = False
        for choice in chunk.choices:
            parts = self._choices.get(choice.index)
            if parts is None:
                parts = self._choices[choice.index] = _ChoiceParts()
            delta = choice.delta
            if delta.content:
                parts.content.append(delta.content)
            if delta.reasoning_content:
                parts.reasoning.append(delta.reasoning_content)
            if delta.refusal:
                parts.refusal.append(delta.refusal)
            if delta.tool_calls:
                _add_tool_calls(parts, delta.tool_calls)
            if choice.finish_reason is not None:
                parts.finish_reason = choice.finish_reason
                finished = finished or choice.index == 0
        return finished

    def add_usage(self, usage: Usage) -> None:
        """Add one attempt's usage (a resumed stream is billed for every attempt)."""
        self._usage = _add_usage(self._usage, usage)

    @property
    def usage(self) -> Usage | None:
        """The usage reported so far (summed over attempts)."""
        return self._usage

    def usage_chunk(self) -> ChatCompletionChunk:
        """The closing usage-only chunk (``choices == []``), as OpenAI sends it."""
        return ChatCompletionChunk(
            id=self._id or "chatcmpl-empty",
            created=self._created,
            model=self._model,
            choices=[],
            usage=self._usage,
        )

    def text(self) -> str:
        """Content of the first choice so far."""
        parts = self._choices.get(0)
        return "".join(parts.content) if parts else ""

    def completion(self, route: RouteInfo | None) -> ChatCompletion:
        choices = []
        for index in sorted(self._choices):
            parts = self._choices[index]
            tool_calls = [
                ChatCompletionMessageToolCall(
                    id=slot["id"],
                    function=Function(name=slot["name"], arguments="".join(slot["args"])),
                )
                for _, slot in sorted(parts.tool_calls.items())
            ]
            message = ChatCompletionMessage(
                content="".join(parts.content) if parts.content or not tool_calls else None,
                reasoning_content="".join(parts.reasoning) or None,
                refusal="".join(parts.refusal) or None,
                tool_calls=tool_calls or None,
            )
            choices.append(Choice(index=index, message=message, finish_reason=parts.finish_reason))
        completion = ChatCompletion(
            id=self._id or "chatcmpl-empty",
            created=self._created,
            model=self._model,
            choices=choices,
            usage=self._usage,
        )
        completion.route = route
        return completion


def _add_tool_calls(parts: _ChoiceParts, calls: list[ChoiceDeltaToolCall]) -> None:
    for call in calls:
        slot = parts.tool_calls.setdefault(call.index, {"id": "", "name": "", "args": []})
        slot["id"] = call.id or slot["id"]
        if call.function is not None:
            slot["name"] = call.function.name or slot["name"]
            if call.function.arguments:
                slot["args"].append(call.function.arguments)


def _add_usage(total: Usage | None, more: Usage) -> Usage:
    """Sum usage across attempts (a resumed stream is billed for both)."""
    if total is None:
        return more
    return Usage(
        prompt_tokens=total.prompt_tokens + more.prompt_tokens,
        completion_tokens=total.completion_tokens + more.completion_tokens,
        total_tokens=total.total_tokens + more.total_tokens,
        completion_tokens_details=more.completion_tokens_details,
        prompt_tokens_details=more.prompt_tokens_details,
    )


class AsyncChatStream:
    """A streamed chat answer. ``async for chunk in stream`` yields each chunk once.

    After the last chunk, :meth:`get_final_completion` returns the assembled completion with
    usage and ``route``; :attr:`route` is live while streaming.
    """

    __slots__ = (
        "_acc",
        "_chunks",
        "_closing",
        "_done",
        "_fed",
        "_include_usage",
        "_left",
        "_pending",
        "_reader",
        "_route",
        "_usage_due",
    )

    def __init__(
        self,
        chunks: AsyncGenerator[ChatCompletionChunk, None],
        route: RouteInfo,
        *,
        include_usage: bool = False,
        _fed: CompletionAccumulator | None = None,
    ) -> None:
        self._chunks = chunks
        self._route = route
        # ``_fed`` (internal): an accumulator that the chunk source itself feeds with every
        # chunk it yields (the executor's stream does, in its one pass over each chunk).
        self._acc = CompletionAccumulator() if _fed is None else _fed
        self._fed = _fed is not None
        self._done = False
        self._pending: ChatCompletionChunk | None = None
        self._include_usage = include_usage
        self._usage_due = False
        # The task waiting on the provider right now (``None`` between chunks), so that
        # ``aclose()`` from another task can stop that wait instead of failing with "generator
        # already running"; ``_left`` is set once that task has let go of the generator.
        self._reader: asyncio.Task[Any] | None = None
        self._closing = False
        self._left: asyncio.Event | None = None

    async def _prime(self) -> None:
        """Wait for the first chunk, so that failures before any content raise from ``create``."""
        try:
            self._pending = await self._chunks.__anext__()
        except StopAsyncIteration:
            self._finished()
        except BaseException:
            self._done = True
            await self._chunks.aclose()
            raise

    def _finished(self) -> None:
        """The provider's stream ran to its end: record usage, queue the usage chunk if asked."""
        self._done = True
        usage = self._acc.usage
        self._route.usage = usage
        self._usage_due = self._include_usage and usage is not None

    @property
    def route(self) -> RouteInfo:
        """How this stream is being produced (attempts so far, chosen model, timings)."""
        return self._route

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ChatCompletionChunk:  # noqa: C901 (one frame per chunk)
        while True:
            if self._pending is not None:
                chunk, self._pending = self._pending, None
            elif self._done:
                if self._usage_due:
                    self._usage_due = False
                    return self._acc.usage_chunk()
                raise StopAsyncIteration
            else:
                self._reader = asyncio.current_task()
                try:
                    chunk = await self._chunks.__anext__()
                except StopAsyncIteration:
                    self._finished()
                    continue
                except asyncio.CancelledError:
                    self._done = True
                    reader = self._reader
                    if self._closing and reader is not None and reader.uncancel() == 0:
                        # aclose() from another task stopped this wait: the loop ends cleanly.
                        raise StopAsyncIteration from None
                    await self._chunks.aclose()
                    raise
                except BaseException:
                    self._done = True
                    await self._chunks.aclose()
                    raise
                finally:
                    self._reader = None
                    if self._left is not None:
                        self._left.set()
            if not self._fed:
                self._acc.add(chunk)
            if chunk.usage is None:
                return chunk
            # Usage travels on at most a chunk or two per attempt: the caller gets it once, at
            # the end, and only if asked (see the module docstring).
            if chunk.choices:
                return chunk.model_copy(update={"usage": None})

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the stream and release its connection (safe to call more than once).

        It may be called from another task than the one iterating: the iterating task's
        ``async for`` then ends (no more chunks, no error) once the connection is closed.
        """
        self._done = True
        self._usage_due = False
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task() and not reader.done():
            self._closing = True
            self._left = asyncio.Event()
            reader.cancel()
            await self._left.wait()
        await self._chunks.aclose()

    async def until_done(self) -> ChatCompletion:
        """Consume what is left and return the assembled completion."""
        async for _ in self:
            pass
        return self.get_final_completion()

    def current_text(self) -> str:
        """The content received so far."""
        return self._acc.text()

    def get_final_completion(self) -> ChatCompletion:
        """The whole answer as one :class:`ChatCompletion`; the stream must have ended."""
        if not self._done:
            raise RuntimeError(
                "the stream has not ended: iterate it to the end or use `await stream.until_done()`"
            )
        return self._acc.completion(self._route)


class ChatStream:
    """The synchronous twin of :class:`AsyncChatStream`, driven through the client's portal."""

    __slots__ = ("_inner", "_portal")

    def __init__(self, inner: AsyncChatStream, portal: _Portal) -> None:
        self._inner = inner
        self._portal = portal

    @property
    def route(self) -> RouteInfo:
        return self._inner.route

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self

    def __next__(self) -> ChatCompletionChunk:
        try:
            return self._portal.call(self._inner.__anext__)
        except StopAsyncIteration:
            raise StopIteration from None

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
        """Stop the stream and release its connection (a no-op once the client is closed,
        which closed every open stream)."""
        if not self._portal.closed:
            self._portal.call(self._inner.aclose)

    def until_done(self) -> ChatCompletion:
        return self._portal.call(self._inner.until_done)

    def current_text(self) -> str:
        return self._inner.current_text()

    def get_final_completion(self) -> ChatCompletion:
        return self._inner.get_final_completion()
