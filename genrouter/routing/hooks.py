"""Per-client callbacks and optional OpenTelemetry spans.

Hooks are plain or async callables set on one client (there is no global registry). A hook
that raises is logged and ignored: observing a request must never break it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from genrouter.types import Attempt, RouteInfo

__all__ = ["AsyncHooks", "Telemetry", "call_hook"]

_log = logging.getLogger("genrouter")

Hook = Callable[..., Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class AsyncHooks:
    """Callbacks for one client; each may be a function or a coroutine function.

    - ``on_attempt_start(model: str, attempt: int)`` before each try of a candidate
    - ``on_attempt_end(attempt: Attempt)`` after each try, whatever its outcome
    - ``on_fallback(failed_model: str, next_model: str, error: BaseException)`` on moving on
    - ``on_complete(route: RouteInfo)`` when a request succeeds (streams: at their end)
    """

    on_attempt_start: Callable[[str, int], Awaitable[None] | None] | None = None
    on_attempt_end: Callable[[Attempt], Awaitable[None] | None] | None = None
    on_fallback: Callable[[str, str, BaseException], Awaitable[None] | None] | None = None
    on_complete: Callable[[RouteInfo], Awaitable[None] | None] | None = None


async def call_hook(hook: Hook | None, *args: Any) -> None:
    """Run *hook* if set; log and swallow anything it raises."""
    if hook is None:
        return
    try:
        result = hook(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        _log.exception("genrouter hook %r raised; ignored", getattr(hook, "__name__", hook))


class Telemetry:
    """OpenTelemetry spans following the GenAI semantic conventions, when the API is installed.

    One span per request (``chat <model>``) with ``gen_ai.*`` attributes and an event per
    attempt. Without ``opentelemetry-api`` every method is a no-op.
    """

    __slots__ = ("_tracer",)

    def __init__(self, tracing: Any) -> None:
        """*tracing*: ``False`` (off), ``None`` (on when ``opentelemetry-api`` is installed,
        through the global tracer provider), ``True`` (on, warn if the API is missing), or an
        OpenTelemetry ``TracerProvider`` to use instead of the global one."""
        self._tracer: Any = None
        if tracing is False:
            return
        if tracing is not None and tracing is not True:
            self._tracer = tracing.get_tracer("genrouter")
            return
        try:
            from opentelemetry import trace
        except ImportError:
            if tracing:
                _log.warning("tracing requested but opentelemetry-api is not installed")
            return
        self._tracer = trace.get_tracer("genrouter")

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def start(self, requested_model: str) -> Any:
        if self._tracer is None:
            return None
        span = self._tracer.start_span(f"chat {requested_model}")
        if not span.is_recording():
            # No SDK configured (the API's default no-op provider): skip the bookkeeping.
            span.end()
            return None
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.request.model", requested_model)
        return span

    def finish(self, span: Any, info: RouteInfo | None, error: BaseException | None) -> None:
        if span is None:
            return
        if info is not None:
            for attempt in info.attempts:
                span.add_event(
                    "gen_ai.attempt",
                    {
                        "gen_ai.response.model": attempt.model,
                        "gen_ai.provider.name": attempt.provider,
                        "genrouter.outcome": attempt.outcome,
                        "error.type": attempt.error_type or "",
                    },
                )
            if info.model:
                span.set_attribute("gen_ai.response.model", info.model)
            if info.provider:
                span.set_attribute("gen_ai.provider.name", info.provider)
            if info.cost_usd is not None:
                span.set_attribute("genrouter.cost_usd", info.cost_usd)
        if error is not None:
            span.set_attribute("error.type", type(error).__name__)
            _set_error_status(span, error)
        span.end()

    def usage(self, span: Any, prompt_tokens: int, completion_tokens: int) -> None:
        if span is not None:
            span.set_attribute("gen_ai.usage.input_tokens", prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", completion_tokens)


def _set_error_status(span: Any, error: BaseException) -> None:
    """Mark *span* failed (OpenTelemetry's ``StatusCode.ERROR``) with the error's type."""
    try:
        from opentelemetry.trace import Status, StatusCode
    except ImportError:  # a TracerProvider passed in without the API installed: attributes only
        return
    span.set_status(Status(StatusCode.ERROR, type(error).__name__))
