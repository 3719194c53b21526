"""Local GGUF models, run in-process by llama-cpp-python.

:class:`LocalProvider` implements the :class:`~genrouter.providers.base.Provider` interface
for catalog models with ``provider = "local"``. Which file to run, and how, comes from the
call's :class:`~genrouter.catalog.ModelSpec` (``path`` or ``package``, ``n_ctx``,
``n_gpu_layers``, ``chat_format``, ``system_prompt``, ``reasoning_format``, ``defaults``).

* Models load lazily, off the event loop, on first use (or ``await provider.preload(spec)``)
  and may unload after ``idle_unload_s`` idle seconds.
* Files are checked first: a missing, unreadable, non-GGUF or incomplete split file raises
  :class:`~genrouter.errors.ModelFileError`; too little memory raises
  :class:`~genrouter.errors.InsufficientMemoryError`; a missing llama-cpp-python raises
  :class:`~genrouter.errors.LocalModelError` with the command that installs it.
* Prompts use the GGUF's own chat template; a base model without one (the gemma demo,
  ``chat_format = "qa"``) gets a ``Q:``/``A:`` prompt.
* ``<think>`` reasoning (``reasoning_format = "think_tags"``) comes back apart, as
  ``reasoning_content``, in complete answers and streams.
* ``provider_options={"local": {...}}`` takes ``min_p``, ``top_k``, ``repeat_penalty`` and a
  GBNF ``grammar``; ``response_format`` (``json_object`` / ``json_schema``) becomes a grammar.
* ``tools`` work through a call format taught in the prompt; a forced ``tool_choice`` turns it
  into a grammar, so the answer is a valid call (see :mod:`genrouter.providers.local._tools`).

Nothing here imports llama_cpp until a model loads.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

from genrouter.catalog import ModelSpec
from genrouter.config import ProviderConfig
from genrouter.errors import GenRouterError, InvalidRequestError, LocalModelError
from genrouter.providers.base import ProviderCall
from genrouter.providers.local._files import read_mem_available
from genrouter.providers.local._prompt import (
    grammar_spec,
    parse_local_options,
    plan_prompt,
    sampling_arguments,
)
from genrouter.providers.local._runtime import (
    Failed,
    Finished,
    GenerationJob,
    LoadProgress,
    LocalModel,
    Piece,
    ProgressCallback,
    Started,
)
from genrouter.providers.local._tools import ToolPlan, parse_calls, plan_tools
from genrouter.reasoning import ThinkSplitter
from genrouter.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionMessageToolCall,
    Choice,
    ChoiceDelta,
    ChoiceDeltaFunctionCall,
    ChoiceDeltaToolCall,
    ChunkChoice,
    CompletionTokensDetails,
    Function,
    Usage,
)

__all__ = ["LoadProgress", "LocalProvider", "ProgressCallback"]


class LocalProvider:
    """Runs local GGUF models in this process; see the module docstring.

    ``memory_probe`` returns the bytes of memory available (default: ``MemAvailable`` from
    ``/proc/meminfo``); tests inject one. ``llama_factory`` replaces ``llama_cpp.Llama``.
    """

    def __init__(
        self,
        name: str,
        config: ProviderConfig,
        *,
        env: Mapping[str, str],
        memory_probe: Callable[[], int | None] = read_mem_available,
        llama_factory: Callable[..., Any] | None = None,
    ) -> None:
        self._name = name
        self._config = config
        self._env = dict(env)
        self._memory_probe = memory_probe
        self._llama_factory = llama_factory
        self._models: dict[tuple[str, str | None, str | None], LocalModel] = {}

    def __repr__(self) -> str:
        return f"LocalProvider(name={self._name!r}, models={len(self._models)})"

    @property
    def name(self) -> str:
        """The provider's configured name."""
        return self._name

    @property
    def continuation_method(self) -> str:
        """How a resumed stream continues here: the prompt ends with the delivered text."""
        return "raw"

    @property
    def is_remote(self) -> bool:
        """Local models never cross the network."""
        return False

    def has_credentials(self) -> bool:
        """Local models need no key."""
        return True

    def _model(self, spec: ModelSpec) -> LocalModel:
        key = (spec.id, spec.path, spec.package)
        model = self._models.get(key)
        if model is None:
            model = LocalModel(
                spec,
                self._config,
                self._env,
                memory_probe=self._memory_probe,
                llama_factory=self._llama_factory,
            )
            self._models[key] = model
        return model

    def is_loaded(self, spec: ModelSpec) -> bool:
        """Whether *spec*'s model is in memory now."""
        model = self._models.get((spec.id, spec.path, spec.package))
        return model is not None and model.loaded

    async def preload(self, spec: ModelSpec, *, progress: ProgressCallback | None = None) -> None:
        """Load *spec*'s model now; *progress* hears each stage (resolving … ready)."""
        await self._model(spec).preload(progress)

    async def unload(self, spec: ModelSpec) -> None:
        """Free *spec*'s model (it loads again on the next request)."""
        model = self._models.get((spec.id, spec.path, spec.package))
        if model is not None:
            await model.unload()

    def _job(self, call: ProviderCall) -> tuple[GenerationJob, ToolPlan | None]:
        request, spec = call.request, call.model
        options = parse_local_options(request)
        tools = plan_tools(request)
        grammar = grammar_spec(request, options)
        if tools is not None and tools.grammar is not None:
            grammar = tools.grammar  # a forced call: the call format, whatever else was asked
        job = GenerationJob(
            plan=plan_prompt(request, spec, tools.instructions if tools else None),
            sampling=sampling_arguments(request, spec, options, call.dropped_params),
            grammar=grammar,
        )
        return job, tools

    async def stream(self, call: ProviderCall) -> AsyncGenerator[ChatCompletionChunk, None]:
        """Answer *call* as chunks; the last one has ``choices=[]`` and the usage."""
        job, tools = self._job(call)
        builder = _ChunkBuilder(call, tools)
        events = self._model(call.model).events(job)
        try:
            async for event in events:
                if isinstance(event, Piece):
                    if (piece := builder.piece(event.text)) is not None:
                        yield piece
                elif isinstance(event, Started):
                    builder.start(event)
                elif isinstance(event, Finished):
                    for piece in builder.finish(event):
                        yield piece
                elif isinstance(event, Failed):
                    raise _as_provider_error(event.error, call.model)
        finally:
            await events.aclose()

    async def complete(self, call: ProviderCall) -> ChatCompletion:
        """Answer *call* in one piece (the stream, gathered)."""
        content: list[str] = []
        reasoning: list[str] = []
        tool_calls: list[ChatCompletionMessageToolCall] = []
        finish_reason: str | None = None
        usage: Usage | None = None
        ident = ""
        created = 0
        stream = self.stream(call)
        try:
            async for piece in stream:
                ident, created = piece.id, piece.created
                if piece.usage is not None:
                    usage = piece.usage
                for choice in piece.choices:
                    if choice.delta.content:
                        content.append(choice.delta.content)
                    if choice.delta.reasoning_content:
                        reasoning.append(choice.delta.reasoning_content)
                    for made in choice.delta.tool_calls or ():
                        # The builder sends each call whole, in one delta.
                        assert made.id and made.function and made.function.name
                        function = Function(
                            name=made.function.name, arguments=made.function.arguments or ""
                        )
                        tool_calls.append(
                            ChatCompletionMessageToolCall(id=made.id, function=function)
                        )
                    finish_reason = choice.finish_reason or finish_reason
        finally:
            await stream.aclose()
        message = ChatCompletionMessage(
            content="".join(content) if content or not tool_calls else None,
            reasoning_content="".join(reasoning) or None,
            tool_calls=tool_calls or None,
        )
        return ChatCompletion(
            id=ident,
            created=created,
            model=call.model.id,
            choices=[Choice(message=message, finish_reason=finish_reason)],
            usage=usage,
        )

    async def aclose(self) -> None:
        """Stop generations, unload every model and end the worker threads."""
        models, self._models = list(self._models.values()), {}
        for model in models:
            await model.aclose()


class _ChunkBuilder:
    """Turns one generation's events into OpenAI-shaped chunks."""

    def __init__(self, call: ProviderCall, tools: ToolPlan | None = None) -> None:
        self._call = call
        self._tools = tools
        # With tools, text that may be a call is held back until it is known to be one or not:
        # all of it when a call is forced, from a leading "[" or "{" otherwise.
        self._held: list[str] | None = [] if tools is not None else None
        self._holding = tools is not None and tools.forced
        self._spec = call.model
        self._id = f"chatcmpl-local-{uuid.uuid4().hex[:24]}"
        self._created = int(time.time())
        self._splitter: ThinkSplitter | None = None
        self._strip_lead = False
        self._first = True
        self._reasoning_tokens = 0

    def _chunk(
        self, content: str | None, reasoning: str | None, finish_reason: str | None = None
    ) -> ChatCompletionChunk:
        delta = ChoiceDelta(
            role="assistant" if self._first else None,
            content=content or None,
            reasoning_content=reasoning or None,
        )
        self._first = False
        return ChatCompletionChunk(
            id=self._id,
            created=self._created,
            model=self._spec.id,
            choices=[ChunkChoice(delta=delta, finish_reason=finish_reason)],
        )

    def start(self, event: Started) -> None:
        if self._spec.reasoning_format == "think_tags":
            # A prompt that opens the thought means the output starts inside it.
            self._splitter = ThinkSplitter(starts_in_thought=event.ends_in_thought or None)
        # "A: answer": the space after "A:" belongs to the format, unless the prompt continues
        # a partial answer: then the model's first character is the seam and is kept exactly.
        messages = self._call.request.messages
        continues = bool(messages) and bool(getattr(messages[-1], "partial", False))
        self._strip_lead = event.style == "qa" and not continues
        if event.style == "qa" and self._spec.chat_format != "qa":
            self._call.notes.append(f"{self._spec.id} has no chat template; used a Q/A prompt")

    def piece(self, text: str) -> ChatCompletionChunk | None:
        reasoning, content = "", text
        if self._splitter is not None:
            in_thought = self._splitter.in_thought
            reasoning, content = self._splitter.feed(text)
            self._reasoning_tokens += in_thought or bool(reasoning)
        if self._strip_lead and content:
            # "A: answer": the space belongs to the Q/A format, not to the answer.
            content = content.lstrip()
            self._strip_lead = not content
        if content and self._held is not None:
            content = self._hold(content)
        if not (reasoning or content):
            return None
        return self._chunk(content, reasoning)

    def _hold(self, content: str) -> str:
        """Content to send now; the rest is held as a possible tool call."""
        assert self._held is not None
        if not self._holding:
            lead = "".join(self._held) + content
            if not lead.strip():
                self._held.append(content)
                return ""
            self._held = None
            if lead.lstrip()[0] not in "[{":
                return lead  # plain text: from now on, stream as usual
            self._held = [lead]
            self._holding = True
            return ""
        self._held.append(content)
        return ""

    def _tool_chunks(self, finish_reason: str) -> tuple[list[ChatCompletionChunk], str]:
        """Held text as tool calls (finish reason ``tool_calls``), or as text if it is none."""
        held, self._held = "".join(self._held or ()), None
        calls = parse_calls(held, self._tools) if held and self._tools else None
        if calls is None:
            return ([self._chunk(held, None)] if held else []), finish_reason
        deltas = [
            ChoiceDeltaToolCall(
                index=i,
                id=c.id,
                type="function",
                function=ChoiceDeltaFunctionCall(name=c.name, arguments=c.arguments),
            )
            for i, c in enumerate(calls)
        ]
        chunk = self._chunk(None, None)
        chunk.choices[0].delta.tool_calls = deltas
        return [chunk], "tool_calls"

    def finish(self, event: Finished) -> list[ChatCompletionChunk]:
        chunks: list[ChatCompletionChunk] = []
        finish_reason = event.finish_reason
        if self._held is not None:
            chunks, finish_reason = self._tool_chunks(finish_reason)
        details = None
        if self._splitter is not None:
            reasoning, content = self._splitter.finish()
            if reasoning or content:
                chunks.append(self._chunk(content, reasoning))
            details = CompletionTokensDetails(reasoning_tokens=self._reasoning_tokens)
        chunks.append(self._chunk(None, None, finish_reason))
        usage = Usage(
            prompt_tokens=event.prompt_tokens,
            completion_tokens=event.completion_tokens,
            total_tokens=event.prompt_tokens + event.completion_tokens,
            completion_tokens_details=details,
        )
        chunks.append(
            ChatCompletionChunk(
                id=self._id, created=self._created, model=self._spec.id, choices=[], usage=usage
            )
        )
        return chunks


def _as_provider_error(error: BaseException, spec: ModelSpec) -> BaseException:
    """What to raise for a failure inside the worker: ours as they are, llama.cpp's wrapped."""
    if isinstance(error, GenRouterError | InvalidRequestError):
        return error
    if isinstance(error, Exception):  # llama.cpp, jinja, the schema converter…: all typed
        wrapped = LocalModelError(
            f"llama.cpp failed while generating: {error}", provider="local", model=spec.model
        )
        wrapped.__cause__ = error
        return wrapped
    return error
