"""One loaded local model: loading, a fair queue of requests, and the thread that generates.

A ``llama_cpp.Llama`` is not thread-safe, so each model gets one worker thread (a
single-thread executor) and one FIFO ``asyncio.Lock``: requests take turns in arrival order,
and the lock is held until the worker thread has really finished with the model, even when
the caller gave up early. Tokens cross from the worker to the event loop through
``loop.call_soon_threadsafe`` into an ``asyncio.Queue``, with a semaphore as backpressure so
the worker never runs more than :data:`STREAM_WINDOW` pieces ahead of the reader. Stopping
is checked on every token (a llama.cpp stopping criterion and the loop over chunks), so an
abandoned stream frees the model within one token.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from genrouter.catalog import ModelSpec
from genrouter.config import ProviderConfig
from genrouter.errors import (
    ContextWindowExceededError,
    InvalidRequestError,
    LocalModelError,
)
from genrouter.providers.local._files import (
    ModelFiles,
    check_memory,
    check_model_files,
    resolve_model_path,
)
from genrouter.providers.local._prompt import (
    QA_STOPS,
    GrammarSpec,
    PromptPlan,
    build_qa_prompt,
    choose_template,
)
from genrouter.reasoning import OPEN_TAG

__all__ = [
    "INSTALL_HINT",
    "STREAM_WINDOW",
    "Failed",
    "Finished",
    "GenerationJob",
    "LoadProgress",
    "LocalModel",
    "Piece",
    "ProgressCallback",
    "Started",
]

logger = logging.getLogger("genrouter.local")

# The portable build from FACTS.md: the default -march=native build dies with SIGILL on
# machines that forbid AMX instructions.
INSTALL_HINT = (
    "llama-cpp-python is not installed; install it with "
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" '
    "pip install 'genrouter[local]'"
)
STREAM_WINDOW = 64

Stage = Literal["resolving", "checking", "loading", "ready", "unloaded"]


@dataclass(frozen=True, slots=True)
class LoadProgress:
    """A step of loading a model, reported to ``preload(progress=...)``."""

    stage: Stage
    model: str
    path: str | None = None
    size_bytes: int | None = None
    elapsed_s: float = 0.0


ProgressCallback = Callable[[LoadProgress], None]


@dataclass(frozen=True, slots=True)
class GenerationJob:
    """Everything the worker needs, prepared (and validated) on the event loop."""

    plan: PromptPlan
    sampling: Mapping[str, Any]
    grammar: GrammarSpec | None


@dataclass(frozen=True, slots=True)
class Started:
    """The prompt is rendered: its style, token count, and whether it ends in ``<think>``."""

    style: Literal["template", "qa"]
    prompt_tokens: int
    ends_in_thought: bool


@dataclass(frozen=True, slots=True)
class Piece:
    """Generated text (about one token)."""

    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    """Generation ended."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class Failed:
    """Generation raised; the exception is re-raised on the event loop."""

    error: BaseException


Event = Started | Piece | Finished | Failed


class _Channel:
    """Worker thread → event loop, at most ``window`` events in flight."""

    __slots__ = ("_loop", "_queue", "_slots", "_stop", "_window")

    def __init__(self, loop: asyncio.AbstractEventLoop, window: int) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._slots = threading.Semaphore(window)
        self._stop = threading.Event()
        self._window = window

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def stop_event(self) -> threading.Event:
        return self._stop

    def put(self, event: Event) -> None:
        """Send *event* (worker thread); blocks while the reader is ``window`` behind.

        After a stop, text is dropped but the final event (``Finished``/``Failed``) still goes
        through: whoever waits for the end (the reader, an unload) must hear it.
        """
        self._slots.acquire()
        if self._stop.is_set() and not isinstance(event, Finished | Failed):
            return
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._stop.set()

    async def get(self) -> Event:
        event = await self._queue.get()
        self._slots.release()
        return event

    def stop(self) -> None:
        """Tell the worker to stop, waking it if it waits for room."""
        self._stop.set()
        self._slots.release(self._window + 1)


@dataclass(slots=True)
class _Loaded:
    llm: Any
    files: ModelFiles
    template: str | None
    template_stops: tuple[str, ...]
    formatter: Any = None


class _TokenCounter:
    """A llama.cpp stopping criterion that stops on request and counts sampled tokens.

    llama-cpp-python calls it once per sampled token with the ids evaluated so far (prompt
    plus earlier output), and once more after the loop with all evaluated ids; either way
    ``len(ids) - prompt + 1`` is the number of tokens sampled so far.
    """

    __slots__ = ("longest", "stop")

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.longest = 0

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        n = len(input_ids)
        if n > self.longest:
            self.longest = n
        return self.stop.is_set()

    def sampled(self, prompt_tokens: int) -> int:
        return max(0, self.longest - prompt_tokens + 1) if self.longest else 0


def _render(loaded: _Loaded, plan: PromptPlan, model_id: str) -> tuple[list[int], list[str], str]:
    """Prompt tokens, stop strings and prompt text for *plan* (worker thread)."""
    llm = loaded.llm
    stops = list(plan.stops)
    if loaded.template is None:
        text = build_qa_prompt(plan.turns, plan.partial)
        stops.extend(QA_STOPS)
        return llm.tokenize(text.encode("utf-8"), add_bos=True, special=False), stops, text
    stops.extend(loaded.template_stops)
    import jinja2

    if loaded.formatter is None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        def token_text(token: int) -> str:
            if token < 0:
                return ""
            return str(llm.detokenize([token], special=True).decode("utf-8", "replace"))

        loaded.formatter = Jinja2ChatFormatter(
            template=loaded.template or "",
            eos_token=token_text(llm.token_eos()),
            bos_token=token_text(llm.token_bos()),
        )
    messages = [{"role": t.role, "content": t.text} for t in plan.turns]
    try:
        result = loaded.formatter(messages=messages)
    except (jinja2.TemplateError, ValueError, TypeError) as exc:  # incl. raise_exception()
        # This model's template will not take these messages; another model may: fail over.
        raise LocalModelError(
            f"the chat template of {model_id} refused these messages: {exc}",
            provider="local",
            model=model_id,
            code="chat_template",
        ) from exc
    text = result.prompt + (plan.partial or "")
    extra = result.stop if isinstance(result.stop, list) else [result.stop] if result.stop else []
    stops.extend(s for s in extra if s)
    tokens = llm.tokenize(text.encode("utf-8"), add_bos=_needs_bos(llm, text), special=True)
    return tokens, stops, text


def _needs_bos(llm: Any, prompt: str) -> bool:
    """Whether to prepend BOS: when the model wants one and the rendered template did not
    write it (ChatML templates never do; llama.cpp's own server adds it then too)."""
    if str(llm.metadata.get("tokenizer.ggml.add_bos_token", "true")).lower() == "false":
        return False
    bos = llm.token_bos()
    if bos < 0:
        return False
    text = llm.detokenize([bos], special=True).decode("utf-8", "replace")
    return not (text and prompt.startswith(text))


def _compile_grammar(spec: GrammarSpec | None, llm: Any) -> Any:
    if spec is None:
        return None
    import llama_cpp
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    param = "provider_options.local.grammar" if spec.kind == "gbnf" else "response_format"
    try:
        if spec.kind == "json_schema":
            grammar = LlamaGrammar.from_json_schema(spec.source or "{}", verbose=False)
        else:
            source = spec.source if spec.kind == "gbnf" and spec.source else JSON_GBNF
            grammar = LlamaGrammar.from_string(source, verbose=False)
    except Exception as exc:  # llama-cpp-python's schema converter asserts on what it can't do
        raise InvalidRequestError(f"cannot build a grammar from it: {exc}", param=param) from exc
    # llama-cpp-python stores the text unchecked; a grammar llama.cpp cannot parse would reach
    # the sampler as NULL and crash the process. Parse it once here and refuse it instead.
    sampler = llama_cpp.llama_sampler_init_grammar(
        llm._model.vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
    )
    if not sampler:
        raise InvalidRequestError("llama.cpp cannot parse this grammar", param=param)
    llama_cpp.llama_sampler_free(sampler)
    return grammar


def _generate(loaded: _Loaded, job: GenerationJob, channel: _Channel, model_id: str) -> None:
    """Run one generation on the worker thread, sending events to *channel*."""
    try:
        from llama_cpp import StoppingCriteriaList

        tokens, stops, text = _render(loaded, job.plan, model_id)
        n_ctx = int(loaded.llm.n_ctx())
        if len(tokens) >= n_ctx:
            raise ContextWindowExceededError(
                f"the prompt has {len(tokens)} tokens; the context window is {n_ctx}",
                provider="local",
                model=model_id,
                code="context_length_exceeded",
            )
        grammar = _compile_grammar(job.grammar, loaded.llm)
        style: Literal["template", "qa"] = "qa" if loaded.template is None else "template"
        channel.put(Started(style, len(tokens), text.rstrip().endswith(OPEN_TAG)))
        counter = _TokenCounter(channel.stop_event)
        chunks = loaded.llm.create_completion(
            prompt=tokens,
            stream=True,
            stop=stops,
            grammar=grammar,
            stopping_criteria=StoppingCriteriaList([counter]),
            **job.sampling,
        )
        finish = "length"
        try:
            for chunk in chunks:
                if channel.stopped:
                    finish = "cancelled"
                    break
                choice = chunk["choices"][0]
                if choice["text"]:
                    channel.put(Piece(choice["text"]))
                if choice["finish_reason"]:
                    finish = choice["finish_reason"]
        finally:
            chunks.close()
        sampled = counter.sampled(len(tokens))
        # An end-of-generation token (or the token completing a stop string) is not output.
        completion = sampled - 1 if finish == "stop" and sampled else sampled
        channel.put(Finished(finish, len(tokens), completion))
    except BaseException as exc:  # delivered to the event loop, re-raised there as it is
        channel.put(Failed(exc))


async def _wait_out(future: asyncio.Future[None]) -> None:
    """Wait until the worker is done, even through cancellation (then re-raise it)."""
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            cancelled = True
        except BaseException:  # the worker's own failure was already sent as Failed
            break
    if cancelled:
        raise asyncio.CancelledError


class LocalModel:
    """One model's runtime: its files, its ``Llama``, its worker thread and its queue."""

    def __init__(
        self,
        spec: ModelSpec,
        config: ProviderConfig,
        env: Mapping[str, str],
        *,
        memory_probe: Callable[[], int | None],
        llama_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.spec = spec
        self._config = config
        self._env = env
        self._memory_probe = memory_probe
        self._llama_factory = llama_factory
        self._lock = asyncio.Lock()  # FIFO: waiters are served in arrival order
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genrouter-local")
        self._loaded: _Loaded | None = None
        self._loading: asyncio.Future[_Loaded] | None = None
        self._active: _Channel | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._uses = 0  # requests started: an idle unload checks none came since it fired
        self._idle_task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory now."""
        return self._loaded is not None

    # -- loading -------------------------------------------------------------------------

    def _construct(self, files: ModelFiles) -> _Loaded:
        """Create the ``Llama`` (worker thread)."""
        factory = self._llama_factory
        if factory is None:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise LocalModelError(
                    INSTALL_HINT, provider="local", model=self.spec.model, path=str(files.path)
                ) from exc
            factory = Llama
        spec = self.spec
        try:
            llm = factory(
                model_path=str(files.path),
                n_ctx=spec.n_ctx or spec.context_window,
                n_gpu_layers=spec.n_gpu_layers,
                n_threads=spec.n_threads,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise LocalModelError(
                f"llama.cpp could not load {files.path}: {exc}",
                path=str(files.path),
                provider="local",
                model=spec.model,
            ) from exc
        template, stops = choose_template(spec, llm.metadata.get("tokenizer.chat_template"))
        return _Loaded(llm=llm, files=files, template=template, template_stops=stops)

    async def _load(self, progress: ProgressCallback | None) -> _Loaded:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()

        def report(stage: Stage, files: ModelFiles | None = None) -> None:
            if progress is not None:
                progress(
                    LoadProgress(
                        stage=stage,
                        model=self.spec.id,
                        path=str(files.path) if files else None,
                        size_bytes=files.size_bytes if files else None,
                        elapsed_s=time.perf_counter() - started,
                    )
                )

        report("resolving")
        path = await loop.run_in_executor(
            self._executor, resolve_model_path, self.spec, self._config, self._env
        )
        report("checking")
        files = await loop.run_in_executor(
            self._executor, lambda: check_model_files(path, model=self.spec.model)
        )
        available = await loop.run_in_executor(self._executor, self._memory_probe)
        check_memory(files, available, n_gpu_layers=self.spec.n_gpu_layers, model=self.spec.model)
        report("loading", files)
        loaded = await loop.run_in_executor(self._executor, self._construct, files)
        seconds = time.perf_counter() - started
        logger.info(
            "loaded local model %s from %s (%.1f MB) in %.2f s",
            self.spec.id,
            files.path,
            files.size_bytes / 1e6,
            seconds,
        )
        report("ready", files)
        return loaded

    async def _ensure_loaded(self, progress: ProgressCallback | None) -> _Loaded:
        """Load once; a caller cancelled mid-load does not abandon the load for others."""
        if self._loaded is not None:
            return self._loaded
        if self._loading is None or (self._loading.done() and self._loading.exception()):
            self._loading = asyncio.ensure_future(self._load(progress))
        loaded = await asyncio.shield(self._loading)
        self._loaded = loaded
        self._loading = None
        return loaded

    async def preload(self, progress: ProgressCallback | None = None) -> None:
        """Load the model now rather than at its first request."""
        async with self._lock:
            await self._ensure_loaded(progress)
        self._schedule_idle_unload()

    # -- generating ----------------------------------------------------------------------

    async def events(self, job: GenerationJob) -> AsyncGenerator[Event, None]:
        """Run *job* when this model's turn comes; yield its events until it ends.

        Closing the iterator early stops generation within one token and waits for the
        worker to let go of the model before the next request may start.
        """
        if self._closed:
            raise LocalModelError("the local provider is closed", provider="local")
        self._uses += 1
        async with self._lock:
            self._cancel_idle_unload()
            loaded = await self._ensure_loaded(None)
            loop = asyncio.get_running_loop()
            channel = _Channel(loop, STREAM_WINDOW)
            self._active = channel
            future = loop.run_in_executor(
                self._executor, _generate, loaded, job, channel, self.spec.model
            )
            try:
                while True:
                    event = await channel.get()
                    yield event
                    if isinstance(event, Finished | Failed):
                        break
            finally:
                channel.stop()
                self._active = None
                await _wait_out(future)
                self._schedule_idle_unload()

    # -- unloading -----------------------------------------------------------------------

    def _schedule_idle_unload(self) -> None:
        idle = self._config.idle_unload_s
        if idle is None or self._closed:
            return
        self._cancel_idle_unload()
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_later(idle, self._on_idle)

    def _cancel_idle_unload(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _on_idle(self) -> None:
        self._idle_timer = None
        if not self._lock.locked():
            self._idle_task = asyncio.ensure_future(self._unload_if_idle(self._uses))

    async def _unload_if_idle(self, uses: int) -> None:
        # A request that arrived after the timer fired (even one still waiting for the lock)
        # keeps the model: without this check it would be unloaded right after that request.
        async with self._lock:
            if uses == self._uses and self._idle_timer is None:
                await self._unload_locked()

    async def unload(self) -> None:
        """Free the model's memory; the next request loads it again."""
        async with self._lock:
            await self._unload_locked()

    async def _unload_locked(self) -> None:
        loaded, self._loaded = self._loaded, None
        if loaded is None:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, loaded.llm.close)
        logger.info("unloaded local model %s (%s)", self.spec.id, loaded.files.path)

    async def aclose(self) -> None:
        """Stop any generation, unload the model and end the worker thread."""
        self._closed = True
        self._cancel_idle_unload()
        if self._active is not None:
            self._active.stop()
        await self.unload()
        self._executor.shutdown(wait=False)
