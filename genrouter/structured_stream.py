"""``chat.completions.stream(...)``: openai-python's streamed ``parse()``, as typed events.

Used as openai-python documents it::

    async with client.chat.completions.stream(messages=..., response_format=Weather) as stream:
        async for event in stream:
            if event.type == "content.delta":
                print(event.delta, end="")
        completion = await stream.get_final_completion()   # ParsedChatCompletion[Weather]

Events (the subset of openai-python's that carries the answer): ``chunk``,
``content.delta`` (``delta``, ``snapshot``, ``parsed`` = the JSON so far, parsed leniently),
``content.done`` (``content``, ``parsed`` = the model instance), ``refusal.delta`` /
``refusal.done``, ``tool_calls.function.arguments.delta`` / ``.done``. Done events come when
the choice finishes. Text reaches the caller as it streams, so a final answer that does not
validate raises :class:`~genrouter.errors.StructuredOutputError` from the stream (there is no
fallback once text was delivered; failures before the first content still fail over).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, Self, TypeVar

from pydantic_core import from_json

from genrouter.catalog import ModelSpec
from genrouter.streaming import AsyncChatStream, ChatStream
from genrouter.structured import OutputSpec, ParsedChatCompletion, SchemaCache, output_spec
from genrouter.types import ChatCompletion, ChatCompletionChunk, RouteInfo

if TYPE_CHECKING:
    from pydantic import BaseModel


__all__ = [
    "AsyncChatCompletionStream",
    "AsyncChatCompletionStreamManager",
    "ChatCompletionStream",
    "ChatCompletionStreamManager",
    "ChunkEvent",
    "ContentDeltaEvent",
    "ContentDoneEvent",
    "FunctionToolCallArgumentsDeltaEvent",
    "FunctionToolCallArgumentsDoneEvent",
    "RefusalDeltaEvent",
    "RefusalDoneEvent",
]

ContentT = TypeVar("ContentT")
SourceT = TypeVar("SourceT", AsyncChatStream, ChatStream)  # the chunk stream it reads
OpenT = TypeVar("OpenT")  # what opens a manager's chunk stream
StreamT = TypeVar("StreamT")  # the event stream a manager hands out


@dataclass(frozen=True, slots=True)
class ChunkEvent:
    chunk: ChatCompletionChunk
    type: Literal["chunk"] = "chunk"


@dataclass(frozen=True, slots=True)
class ContentDeltaEvent:
    delta: str
    snapshot: str
    parsed: object | None
    type: Literal["content.delta"] = "content.delta"


@dataclass(frozen=True, slots=True)
class ContentDoneEvent(Generic[ContentT]):
    content: str
    parsed: ContentT | None
    type: Literal["content.done"] = "content.done"


@dataclass(frozen=True, slots=True)
class RefusalDeltaEvent:
    delta: str
    snapshot: str
    type: Literal["refusal.delta"] = "refusal.delta"


@dataclass(frozen=True, slots=True)
class RefusalDoneEvent:
    refusal: str
    type: Literal["refusal.done"] = "refusal.done"


@dataclass(frozen=True, slots=True)
class FunctionToolCallArgumentsDeltaEvent:
    name: str
    index: int
    arguments: str
    parsed_arguments: object | None
    arguments_delta: str
    type: Literal["tool_calls.function.arguments.delta"] = "tool_calls.function.arguments.delta"


@dataclass(frozen=True, slots=True)
class FunctionToolCallArgumentsDoneEvent:
    name: str
    index: int
    arguments: str
    parsed_arguments: object | None
    type: Literal["tool_calls.function.arguments.done"] = "tool_calls.function.arguments.done"


StreamEvent = (
    ChunkEvent
    | ContentDeltaEvent
    | ContentDoneEvent[Any]
    | RefusalDeltaEvent
    | RefusalDoneEvent
    | FunctionToolCallArgumentsDeltaEvent
    | FunctionToolCallArgumentsDoneEvent
)


def _partial(text: str) -> object | None:
    try:
        value: object = from_json(text, allow_partial=True)
    except ValueError:
        return None
    return value


@dataclass(slots=True)
class _Snapshot:
    """What the first choice said so far (events are for choice 0, as openai-python's)."""

    content: str = ""
    refusal: str = ""
    calls: dict[int, list[str]] = field(default_factory=dict)  # index -> [name, arguments]


class _Events:
    """Turns chunks into events; pure bookkeeping."""

    def __init__(self, output: OutputSpec) -> None:
        self._output = output
        self._seen = _Snapshot()

    def events(self, chunk: ChatCompletionChunk) -> list[StreamEvent]:
        events: list[StreamEvent] = [ChunkEvent(chunk)]
        seen = self._seen
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta.content:
                seen.content += delta.content
                parsed = _partial(seen.content) if self._output.model else None
                events.append(ContentDeltaEvent(delta.content, seen.content, parsed))
            if delta.refusal:
                seen.refusal += delta.refusal
                events.append(RefusalDeltaEvent(delta.refusal, seen.refusal))
            for call in delta.tool_calls or ():
                slot = seen.calls.setdefault(call.index, ["", ""])
                piece = call.function.arguments if call.function else None
                if call.function is not None and call.function.name:
                    slot[0] = call.function.name
                if piece:
                    slot[1] += piece
                    events.append(
                        FunctionToolCallArgumentsDeltaEvent(
                            slot[0], call.index, slot[1], _partial(slot[1]), piece
                        )
                    )
            if choice.finish_reason is not None:
                events.extend(self._done())
        return events

    def _done(self) -> list[StreamEvent]:
        seen = self._seen
        done: list[StreamEvent] = []
        if seen.content:
            done.append(ContentDoneEvent(seen.content, None))
        if seen.refusal:
            done.append(RefusalDoneEvent(seen.refusal))
        for index, (name, arguments) in sorted(seen.calls.items()):
            done.append(FunctionToolCallArgumentsDoneEvent(name, index, arguments, None))
        return done


class _Parsing(Generic[ContentT]):
    """What the async and the sync stream share: chunks into events (a choice's done content
    parsed into the model), and the final parse. One stream's state; no I/O, so it runs in
    whichever thread reads the stream."""

    def __init__(self, output: OutputSpec, spec_for: Callable[[str], ModelSpec | None]) -> None:
        self._output = output
        self._spec_for = spec_for
        self._events = _Events(output)

    def events(self, chunk: ChatCompletionChunk, route: RouteInfo) -> list[StreamEvent]:
        return [self._with_parsed(e, chunk, route) for e in self._events.events(chunk)]

    def _with_parsed(
        self, event: StreamEvent, chunk: ChatCompletionChunk, route: RouteInfo
    ) -> StreamEvent:
        if not isinstance(event, ContentDoneEvent) or self._output.model is None:
            return event
        finish = next((c.finish_reason for c in chunk.choices if c.index == 0), None)
        where = {"provider": route.provider, "model": chunk.model}
        return ContentDoneEvent(
            event.content, self._output.parse_content(event.content, finish, where)
        )

    def final(self, completion: ChatCompletion, route: RouteInfo) -> ParsedChatCompletion[ContentT]:
        parsed: ParsedChatCompletion[ContentT] = self._output.check(
            completion, self._answered_by(route)
        )
        parsed.route = route
        return parsed

    def _answered_by(self, route: RouteInfo) -> ModelSpec:
        model = route.model or "unknown/unknown"
        spec = self._spec_for(model)
        if spec is None:
            provider, _, name = model.partition("/")
            spec = ModelSpec(id=model, provider=provider, model=name or model)
        return spec


def streamed_parse_call(
    model: str,
    messages: Any,
    response_format: type[BaseModel] | Mapping[str, Any] | None,
    params: dict[str, Any],
    schemas: SchemaCache,
) -> tuple[dict[str, Any], OutputSpec]:
    """``create()``'s keywords for a streamed parse, and what the answer is parsed against
    (one place for both clients' ``chat.completions.stream()``)."""
    params.pop("stream", None)
    output = output_spec(response_format, params.get("tools"), schemas)
    call: dict[str, Any] = {"model": model, "messages": messages, "stream": True, **params}
    if output.wire_format is not None:
        call["response_format"] = dict(output.wire_format)
    return call, output


class _EventStream(Generic[SourceT, ContentT]):
    """What both event streams hold: the chunk stream they read, its events' state and the
    events made from a chunk but not handed out yet."""

    def __init__(self, source: SourceT, parsing: _Parsing[ContentT]) -> None:
        self._inner: SourceT = source
        self._parsing = parsing
        self._queue: deque[StreamEvent] = deque()

    @property
    def route(self) -> RouteInfo:
        """The stream's :class:`~genrouter.types.RouteInfo` (live while streaming)."""
        return self._inner.route


class AsyncChatCompletionStream(_EventStream[AsyncChatStream, ContentT]):
    """The events of one streamed answer; :meth:`get_final_completion` parses it."""

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> StreamEvent:
        while not self._queue:
            chunk = await self._inner.__anext__()  # StopAsyncIteration ends us too
            self._queue.extend(self._parsing.events(chunk, self._inner.route))
        return self._queue.popleft()

    async def get_final_completion(self) -> ParsedChatCompletion[ContentT]:
        """Consume the rest of the stream and return the parsed completion."""
        async for _ in self:
            pass
        return self._parsing.final(self._inner.get_final_completion(), self._inner.route)

    async def close(self) -> None:
        """Stop the stream and release its connection."""
        await self._inner.aclose()


class _Manager(Generic[OpenT, StreamT]):
    """What both stream managers hold: how to open the stream, and what its answer is parsed
    against. Each entry is a new request, whose events get their own state."""

    def __init__(
        self, open_stream: OpenT, output: OutputSpec, spec_for: Callable[[str], ModelSpec | None]
    ) -> None:
        self._open = open_stream
        self._output = output
        self._spec_for = spec_for
        self._stream: StreamT | None = None

    def _parsing(self) -> _Parsing[Any]:
        return _Parsing(self._output, self._spec_for)


class AsyncChatCompletionStreamManager(
    _Manager[Callable[[], Awaitable[AsyncChatStream]], "AsyncChatCompletionStream[ContentT]"],
    Generic[ContentT],
):
    """``async with client.chat.completions.stream(...) as stream``: opens, then closes."""

    async def __aenter__(self) -> AsyncChatCompletionStream[ContentT]:
        self._stream = AsyncChatCompletionStream(await self._open(), self._parsing())
        return self._stream

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stream is not None:
            await self._stream.close()


class ChatCompletionStream(_EventStream[ChatStream, ContentT]):
    """The synchronous twin of :class:`AsyncChatCompletionStream`.

    Its chunks come from the sync client's chunk stream, which a pump on the portal reads ahead
    (:class:`genrouter.sync.Client`); events are made in the caller's thread, so a stream costs
    the round trip that opened it and none per event.
    """

    def __iter__(self) -> Iterator[StreamEvent]:
        return self

    def __next__(self) -> StreamEvent:
        while not self._queue:
            chunk = next(self._inner)  # StopIteration ends us too
            self._queue.extend(self._parsing.events(chunk, self._inner.route))
        return self._queue.popleft()

    def get_final_completion(self) -> ParsedChatCompletion[ContentT]:
        """Consume the rest of the stream and return the parsed completion."""
        for _ in self:
            pass
        return self._parsing.final(self._inner.get_final_completion(), self._inner.route)

    def close(self) -> None:
        """Stop the stream and release its connection."""
        self._inner.close()


class ChatCompletionStreamManager(
    _Manager[Callable[[], ChatStream], "ChatCompletionStream[ContentT]"], Generic[ContentT]
):
    """``with client.chat.completions.stream(...) as stream`` for the sync client."""

    def __enter__(self) -> ChatCompletionStream[ContentT]:
        self._stream = ChatCompletionStream(self._open(), self._parsing())
        return self._stream

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stream is not None:
            self._stream.close()
