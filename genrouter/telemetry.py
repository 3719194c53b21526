"""OpenTelemetry for genrouter: GenAI spans and metrics, plus the routing log lines.

One :class:`Telemetry` per client. Per request it hands the executor a
:class:`RequestTelemetry` (or ``None`` when nothing would record: the cheap path), which makes

- one ``CLIENT`` span per request, ``chat {model}`` with the caller's ``model``, covering every
  attempt; its attributes describe the attempt that answered (provider, vendor model, server,
  response id, finish reasons, usage) and its status is ``ERROR`` with ``error.type`` on failure;
- one child ``CLIENT`` span per attempt (each retry, fallback and resumed continuation), each
  with its own provider, model, server and outcome;
- the GenAI client metrics (``gen_ai.client.operation.duration``,
  ``gen_ai.client.operation.time_to_first_chunk``, ``gen_ai.client.token.usage``) and
  genrouter's own counters (attempts by outcome, fallbacks, circuit transitions, cooldowns,
  estimated and actual cost).

Nothing here imports OpenTelemetry at ``import genrouter`` or on a request's path when it is
not in use: with the default ``tracing=None`` / ``metrics=None``, a request checks
``sys.modules`` (OpenTelemetry not imported by anyone: no SDK can be configured) and whether
the global provider is still the API's placeholder; only then, once, are the tracer, meter and
instruments resolved. Prompt and completion text is recorded only with ``capture_content``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from genrouter._logging import (
    LOGGER_NAME,
    log_circuit,
    log_cooldown,
    log_fallback,
    log_offline,
    log_resume,
    log_retry,
    reason_of,
)
from genrouter._telemetry_names import Names, load_names
from genrouter.errors import redact
from genrouter.telemetry_metrics import Instruments, measure_request

if TYPE_CHECKING:
    from genrouter.catalog import ModelSpec
    from genrouter.request import ChatRequest
    from genrouter.routing.attempt import StreamProgress
    from genrouter.types import Attempt, ChatCompletion, ChatCompletionChunk, RouteInfo, Usage

__all__ = ["HealthObserver", "RequestTelemetry", "Telemetry", "provider_system"]

_INSTRUMENTATION = "genrouter"

# gen_ai.provider.name per provider class: the conventions' well-known value where one applies
# ("openai"); otherwise a custom value, as the conventions allow.
_SYSTEMS = {
    "OpenAIProvider": "openai",
    "DashScopeProvider": "dashscope",
    "LocalProvider": "llama_cpp",
}


def _unset(module: Any, attribute: str, named_in_environment: bool) -> bool:
    """Whether OpenTelemetry's global provider is certainly unset: its module global is still
    ``None`` and the environment names no provider for the API to load.

    The public getters (``get_tracer_provider``) read ``os.environ`` on every call, several
    µs here: too much for every request of a client that nobody traces. When the global is
    not where this looks (another API version), the answer is "not certain" and the caller
    asks the public getter.
    """
    if module is None or getattr(module, attribute, False) is not None:
        return False
    return not named_in_environment


def provider_system(provider: object) -> str:
    """``gen_ai.provider.name`` for *provider*: ``openai``, ``dashscope``, ``llama_cpp``; an
    OpenAI-compatible or custom provider is named by its configured name."""
    known = _SYSTEMS.get(type(provider).__name__)
    if known is not None:
        return known
    return str(getattr(provider, "name", None) or type(provider).__name__)


def _server(provider: object) -> tuple[str, int] | None:
    base_url = getattr(provider, "base_url", None)
    if not isinstance(base_url, str):
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    if not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


class Telemetry:
    """One client's OpenTelemetry: its tracer and meter, resolved on first use.

    *tracing* and *metrics*: ``None`` (the default: the global provider, when an SDK has
    been configured), ``False`` (off), ``True`` (the global provider; warns now if
    ``opentelemetry-api`` is missing), or a ``TracerProvider`` / ``MeterProvider``.
    *capture_content*: record prompts and answers on spans (``gen_ai.input.messages``,
    ``gen_ai.output.messages``, ``gen_ai.system_instructions``); off by default.
    """

    __slots__ = (
        "_env_named",
        "_instruments",
        "_meter_arg",
        "_names",
        "_tracer",
        "_tracing_arg",
        "capture_content",
    )

    def __init__(
        self, tracing: Any = None, metrics: Any = None, *, capture_content: bool = False
    ) -> None:
        self._tracing_arg = tracing
        self._meter_arg = metrics
        # Providers named in the environment, which the API loads on first use (read once).
        self._env_named = frozenset(
            kind
            for kind, variable in (
                ("tracer", "OTEL_PYTHON_TRACER_PROVIDER"),
                ("meter", "OTEL_PYTHON_METER_PROVIDER"),
            )
            if variable in os.environ
        )
        self._tracer: Any = None
        self._instruments: Instruments | None = None
        self._names: Names | None = None
        self.capture_content = capture_content
        if tracing is True or metrics is True:
            # Asked for explicitly: say now if it cannot work.
            try:
                import opentelemetry.trace  # noqa: F401
            except ImportError:
                logging.getLogger(LOGGER_NAME).warning(
                    "tracing/metrics requested but opentelemetry-api is not installed"
                )
                self._tracing_arg = self._meter_arg = False

    @property
    def enabled(self) -> bool:
        """Whether a request now would be traced or measured."""
        return self._active_tracer() is not None or self._active_instruments() is not None

    def names(self) -> Names:
        if self._names is None:
            self._names = load_names()
        return self._names

    # -- resolving, cheaply ----------------------------------------------------------------

    def _active_tracer(self) -> Any:
        arg = self._tracer
        if arg is not None:
            return arg  # resolved once: the global provider can be set only once
        arg = self._tracing_arg
        if arg is False:
            return None
        if arg is not None and arg is not True:
            self._tracer = arg.get_tracer(_INSTRUMENTATION)
            return self._tracer
        api = sys.modules.get("opentelemetry.trace")
        if api is None:
            return None  # nobody imported OpenTelemetry: no SDK can be configured
        if _unset(api, "_TRACER_PROVIDER", "tracer" in self._env_named):
            return None
        if isinstance(api.get_tracer_provider(), api.ProxyTracerProvider):
            return None  # the API's placeholder: no SDK configured (yet)
        self._tracer = api.get_tracer(_INSTRUMENTATION)
        return self._tracer

    def _active_instruments(self) -> Instruments | None:
        if self._instruments is not None:
            return self._instruments
        arg = self._meter_arg
        if arg is False:
            return None
        if arg is None or arg is True:
            api = sys.modules.get("opentelemetry.metrics")
            if api is None:
                return None
            internal = sys.modules.get("opentelemetry.metrics._internal")
            if _unset(internal, "_METER_PROVIDER", "meter" in self._env_named):
                return None
            provider = api.get_meter_provider()
            if type(provider).__name__ == "_ProxyMeterProvider":
                return None  # the API's placeholder: no SDK configured (yet)
        else:
            provider = arg
        self._instruments = Instruments(provider.get_meter(_INSTRUMENTATION), self.names())
        return self._instruments

    # -- per request -----------------------------------------------------------------------

    def begin(self, request: ChatRequest) -> RequestTelemetry | None:
        """The recorder for one request, or ``None`` when nothing would be recorded."""
        tracer = self._active_tracer()
        instruments = self._active_instruments()
        if tracer is None and instruments is None:
            return None
        return RequestTelemetry(self, tracer, instruments, request)

    # -- routing events (rare: failure paths), logged whatever the OpenTelemetry setup -----

    def attempt_ended(
        self, obs: RequestTelemetry | None, attempt: Attempt, error: BaseException | None
    ) -> None:
        """An attempt ended: its span and count (when recording); a retry is logged always."""
        if obs is not None:
            obs.attempt_ended(attempt, error)
        elif attempt.retry_delay_ms is not None:
            log_retry(attempt.model, attempt.retry_delay_ms / 1000.0, reason_of(error))

    def fallback(
        self, obs: RequestTelemetry | None, failed: str, next_model: str, error: BaseException
    ) -> None:
        reason = reason_of(error)
        log_fallback(failed, next_model, reason)
        if obs is not None:
            obs.event("genrouter.fallback", {"genrouter.from": failed, "genrouter.to": next_model})
        instruments = self._active_instruments()
        if instruments is not None:
            instruments.fallbacks.add(1, {"genrouter.model": failed, "genrouter.kind": "fallback"})

    def resumed(self, obs: RequestTelemetry | None, failed: str, error: BaseException) -> None:
        log_resume(failed, reason_of(error))
        if obs is not None:
            obs.event("genrouter.resume", {"genrouter.from": failed})
        instruments = self._active_instruments()
        if instruments is not None:
            instruments.fallbacks.add(1, {"genrouter.model": failed, "genrouter.kind": "resume"})

    @property
    def health(self) -> HealthObserver:
        """What the client's health bookkeeping tells about circuits, cooldowns, reachability."""
        return HealthObserver(self)


class HealthObserver:
    """Logs and counts what :mod:`genrouter.routing.health` changes (rare events)."""

    __slots__ = ("_telemetry",)

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry

    def circuit(self, model: str, state: str, reason: str) -> None:
        """The breaker of *model* entered *state* (``open``, ``half_open``, ``closed``)."""
        log_circuit(model, state, reason)
        instruments = self._telemetry._active_instruments()
        if instruments is not None:
            instruments.circuit.add(1, {"genrouter.model": model, "genrouter.circuit.state": state})

    def cooldown(self, model: str, seconds: float) -> None:
        log_cooldown(model, seconds)
        instruments = self._telemetry._active_instruments()
        if instruments is not None:
            instruments.cooldowns.add(1, {"genrouter.model": model})

    def offline(self, subject: str, down: bool, reason: str) -> None:
        log_offline(subject, down, reason)


def _messages_json(request: ChatRequest) -> tuple[str, str | None]:
    """``(gen_ai.input.messages, gen_ai.system_instructions)`` as the conventions' JSON."""
    chat: list[dict[str, Any]] = []
    system: list[dict[str, Any]] = []
    for message in request.messages:
        role = getattr(message, "role", "user")
        content = getattr(message, "content", None)
        parts: list[dict[str, Any]] = []
        if isinstance(content, str):
            parts.append({"type": "text", "content": content})
        elif isinstance(content, list):
            for part in content:
                text = part.get("text") if isinstance(part, dict) else getattr(part, "text", None)
                if text is not None:
                    parts.append({"type": "text", "content": text})
        if role in ("system", "developer"):
            system.extend(parts)
        else:
            chat.append({"role": role, "parts": parts})
    return json.dumps(chat), (json.dumps(system) if system else None)


def _output_json(text: str, finish_reason: str | None) -> str:
    message = {
        "role": "assistant",
        "parts": [{"type": "text", "content": text}],
        "finish_reason": finish_reason or "stop",
    }
    return json.dumps([message])


class RequestTelemetry:
    """One request's spans and measurements; made by :meth:`Telemetry.begin`.

    The request span is created lazily (at the first attempt, or at the end), with the time
    the request started, so a stream that is never iterated leaves no open span behind.
    """

    __slots__ = (
        "_answer",
        "_attempt",
        "_attempt_system",
        "_instruments",
        "_names",
        "_numbers",
        "_owner",
        "_parent",
        "_request",
        "_server",
        "_start_ns",
        "_tracer",
    )

    def __init__(
        self,
        owner: Telemetry,
        tracer: Any,
        instruments: Instruments | None,
        request: ChatRequest,
    ) -> None:
        self._owner = owner
        self._tracer = tracer
        self._instruments = instruments
        self._names = owner.names()
        self._request = request
        self._start_ns = time.time_ns()
        self._parent: Any = None
        self._attempt: Any = None
        self._attempt_system: str | None = None
        self._server: tuple[str, int] | None = None
        self._numbers: dict[str, int] = {}
        # The answering attempt: (system, server, response id, vendor model, finish, usage, text)
        self._answer: tuple[Any, ...] | None = None

    # -- spans -----------------------------------------------------------------------------

    def _request_attributes(self) -> dict[str, Any]:
        n, request = self._names, self._request
        attributes: dict[str, Any] = {
            n.operation_name: "chat",
            n.request_model: request.model,
            n.request_stream: request.stream,
        }
        max_tokens = request.max_completion_tokens or request.max_tokens
        for name, value in (
            (n.request_temperature, request.temperature),
            (n.request_top_p, request.top_p),
            (n.request_max_tokens, max_tokens),
            (n.request_seed, request.seed),
            (n.request_frequency_penalty, request.frequency_penalty),
            (n.request_presence_penalty, request.presence_penalty),
        ):
            if value is not None:
                attributes[name] = value
        if request.n is not None and request.n != 1:
            attributes[n.request_choice_count] = request.n
        if request.stop is not None:
            stop = [request.stop] if isinstance(request.stop, str) else list(request.stop)
            attributes[n.request_stop_sequences] = stop
        if self._owner.capture_content:
            messages, system = _messages_json(request)
            attributes[n.input_messages] = messages
            if system is not None:
                attributes[n.system_instructions] = system
        return attributes

    def _request_span(self) -> Any:
        if self._parent is None and self._tracer is not None:
            from opentelemetry.trace import SpanKind

            span = self._tracer.start_span(
                f"chat {self._request.model}",
                kind=SpanKind.CLIENT,
                attributes=self._request_attributes(),
                start_time=self._start_ns,
            )
            self._parent = span if span.is_recording() else False
            if self._parent is False:
                span.end()
        return self._parent or None

    def event(self, name: str, attributes: dict[str, Any]) -> None:
        span = self._request_span()
        if span is not None:
            span.add_event(name, attributes)

    def attempt_started(self, spec: ModelSpec, provider: object) -> None:
        """An attempt at *spec* on *provider* begins (its lease was just taken)."""
        self._attempt_system = provider_system(provider)
        self._server = _server(provider)
        parent = self._request_span()
        if parent is None:
            return
        from opentelemetry import trace

        n = self._names
        number = self._numbers[spec.id] = self._numbers.get(spec.id, 0) + 1
        attributes: dict[str, Any] = {
            n.operation_name: "chat",
            n.provider_name: self._attempt_system,
            n.request_model: spec.model,
            "genrouter.model": spec.id,
            "genrouter.provider": spec.provider,
            "genrouter.attempt": number,
        }
        if self._server is not None:
            attributes[n.server_address], attributes[n.server_port] = self._server
        self._attempt = self._tracer.start_span(
            f"chat {spec.model}",
            context=trace.set_span_in_context(parent),
            kind=trace.SpanKind.CLIENT,
            attributes=attributes,
        )

    def _set_response(
        self,
        span: Any,
        response_id: str | None,
        model: str | None,
        finish: list[str],
        usage: Usage | None,
    ) -> None:
        n = self._names
        if response_id:
            span.set_attribute(n.response_id, response_id)
        if model:
            span.set_attribute(n.response_model, model)
        if finish:
            span.set_attribute(n.response_finish_reasons, finish)
        if usage is not None:
            span.set_attribute(n.usage_input_tokens, usage.prompt_tokens)
            span.set_attribute(n.usage_output_tokens, usage.completion_tokens)
            if usage.reasoning_tokens:
                span.set_attribute(n.usage_reasoning_output_tokens, usage.reasoning_tokens)
            if usage.cached_tokens:
                span.set_attribute(n.usage_cache_read_input_tokens, usage.cached_tokens)

    def answered(self, response: ChatCompletion) -> None:
        """The current attempt returned *response* (a complete call)."""
        finish = [c.finish_reason for c in response.choices if c.finish_reason]
        text = "".join(c.message.content or "" for c in response.choices[:1])
        self._answered(response.id, response.model, finish, response.usage, text)

    def streamed(
        self,
        buffered: list[ChatCompletionChunk],
        progress: StreamProgress,
        usage: Usage | None,
        prefix: str,
    ) -> None:
        """The current attempt's stream ended (complete, cut, or closed by the caller);
        *buffered* starts with its first chunk, *prefix* is what earlier attempts delivered."""
        first = buffered[0] if buffered else None
        response_id = first.id if first is not None else None
        model = first.model if first is not None else None
        finish = [progress.finish_reason] if progress.finish_reason else []
        text = prefix + "".join(progress.text) if self._owner.capture_content else ""
        self._answered(response_id, model, finish, usage, text)

    def _answered(
        self,
        response_id: str | None,
        model: str | None,
        finish: list[str],
        usage: Usage | None,
        text: str,
    ) -> None:
        self._answer = (self._attempt_system, self._server, response_id, model, finish, usage, text)
        if self._attempt is not None:
            self._set_response(self._attempt, response_id, model, finish, usage)

    def attempt_ended(self, attempt: Attempt, error: BaseException | None) -> None:
        """The current attempt ended as *attempt* says; end its span, count it, log a retry."""
        if attempt.retry_delay_ms is not None:
            log_retry(attempt.model, attempt.retry_delay_ms / 1000.0, reason_of(error))
        instruments = self._instruments
        if instruments is not None:
            attributes: dict[str, Any] = {
                "genrouter.outcome": attempt.outcome,
                "genrouter.model": attempt.model,
                self._names.provider_name: self._attempt_system or attempt.provider,
            }
            if attempt.error_type:
                attributes[self._names.error_type] = attempt.error_type
            instruments.attempts.add(1, attributes)
        span, self._attempt = self._attempt, None
        if span is None:
            return
        span.set_attribute("genrouter.outcome", attempt.outcome)
        if attempt.retry_delay_ms is not None:
            span.set_attribute("genrouter.retry_delay_ms", attempt.retry_delay_ms)
        if attempt.status_code is not None:
            span.set_attribute("http.response.status_code", attempt.status_code)
        if attempt.error_type is not None:
            _fail(span, self._names, attempt.error_type, attempt.error or attempt.error_type)
        span.end()

    def finish(self, info: RouteInfo | None, error: BaseException | None) -> None:
        """The request is over: end every span, record the request's measurements."""
        if self._attempt is not None:  # safety net: an attempt that never reported its end
            self._attempt.set_attribute("genrouter.outcome", "abandoned")
            self._attempt.end()
            self._attempt = None
        answer = self._answer if error is None else None
        attributes = self._outcome_attributes(answer, error)
        span = self._request_span()
        if span is not None:
            self._end_request_span(span, attributes, answer, info, error)
        if self._instruments is not None:
            measure_request(
                self._instruments,
                self._names,
                attributes,
                info,
                answer[5] if answer is not None else None,
                stream=self._request.stream,
                start_ns=self._start_ns,
            )

    def _outcome_attributes(
        self, answer: tuple[Any, ...] | None, error: BaseException | None
    ) -> dict[str, Any]:
        """The attributes the request span and the request metrics share."""
        n = self._names
        attributes: dict[str, Any] = {
            n.operation_name: "chat",
            n.request_model: self._request.model,
        }
        if answer is not None:
            system, server, _id, model = answer[:4]
            attributes[n.provider_name] = system
            if server is not None:
                attributes[n.server_address], attributes[n.server_port] = server
            if model:
                attributes[n.response_model] = model
        elif self._attempt_system is not None:
            attributes[n.provider_name] = self._attempt_system
        if error is not None:
            attributes[n.error_type] = type(error).__name__
        return attributes

    def _end_request_span(
        self,
        span: Any,
        attributes: dict[str, Any],
        answer: tuple[Any, ...] | None,
        info: RouteInfo | None,
        error: BaseException | None,
    ) -> None:
        n = self._names
        span.set_attributes(attributes)
        if answer is not None:
            _system, _server, response_id, model, finish, usage, text = answer
            self._set_response(span, response_id, model, finish, usage)
            if self._owner.capture_content:
                span.set_attribute(n.output_messages, _output_json(text, (finish or [None])[0]))
        if info is not None:
            _route_attributes(span, info, self._request.stream, n)
        if error is not None:
            _fail(span, n, type(error).__name__, str(error) or type(error).__name__)
        span.end()


def _route_attributes(span: Any, info: RouteInfo, stream: bool, n: Names) -> None:
    span.set_attribute("genrouter.route", info.route)
    if info.model:
        span.set_attribute("genrouter.model", info.model)
    span.set_attribute("genrouter.attempts", len(info.attempts))
    span.set_attribute("genrouter.fallbacks", info.fallbacks)
    if info.resumed:
        span.set_attribute("genrouter.resumed", True)
    if info.cost_usd is not None:
        span.set_attribute("genrouter.cost_usd", info.cost_usd)
    if info.estimated_cost_usd is not None:
        span.set_attribute("genrouter.estimated_cost_usd", info.estimated_cost_usd)
    if stream and info.ttft_ms is not None:
        span.set_attribute(n.response_time_to_first_chunk, info.ttft_ms / 1000.0)


def _fail(span: Any, names: Names, error_type: str, description: str) -> None:
    """Mark *span* failed: ``error.type`` and OpenTelemetry's ``StatusCode.ERROR``."""
    span.set_attribute(names.error_type, error_type)
    try:
        from opentelemetry.trace import Status, StatusCode
    except ImportError:  # a TracerProvider passed in without the API installed: attributes only
        return
    span.set_status(Status(StatusCode.ERROR, redact(description)[:200]))
