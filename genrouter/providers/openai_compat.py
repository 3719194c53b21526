"""The OpenAI wire path: ``POST {base_url}/chat/completions``, JSON or server-sent events.

:class:`OpenAICompatibleProvider` talks to any server that speaks OpenAI's chat completions API
(vLLM, llama.cpp's server, Ollama, DashScope's compatible mode, OpenAI itself). It sends one
request on the client's shared ``httpx2.AsyncClient`` and parses the answer itself with
pydantic (``model_validate_json`` on the bytes), which is what keeps genrouter's overhead near
a raw HTTP call. On the pool genrouter builds itself, where httpx2's client layer would do
nothing, the request goes straight onto the pool's transport, the same bytes on the wire
(``providers/_direct.py``). It never retries: routing does.

Subclasses adapt it to a vendor by overriding these class attributes and hooks:

``kind``
    The key looked up in ``request.provider_options`` (``"openai"``, ``"dashscope"``…).
``default_base_url`` / ``default_key_env``
    Used when the configuration gives no ``base_url`` / ``api_key_env``.
``key_required``
    Whether a call without a key fails with :class:`AuthenticationError` before sending
    (a local compatible server often needs no key).
``dialect``
    The vendor's wire rules as data (:class:`~genrouter.providers._dialect.WireDialect`):
    which of OpenAI's platform parameters it takes, how earlier assistant turns are written.
``error_dialect``
    The table that turns this wire's error bodies into typed errors.
``continuation``
    How a partial assistant answer is continued on resume (``instruction``, ``partial``,
    ``prefix``).
``request_headers(key)``
    Headers for every request: ``Authorization`` plus the configured ``headers``.
``check_input(call)``
    Refuse input the model cannot take before anything is sent.
``prepare_messages(call)`` / ``build_body(call, stream=...)``
    The messages and the JSON body (pure: no I/O).
``resolve_media(messages)``
    Turn local image paths in the prepared messages into data URIs (runs in a thread).
``map_error(status, body, headers)`` / ``map_stream_error(payload)``
    An HTTP error response, or an ``{"error": ...}`` event inside a stream, to a typed error.
``is_error_payload(payload)``
    Whether a JSON body or event that is not a completion is an error report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import httpx2
from pydantic import ValidationError
from pydantic_core import to_json

from genrouter._transport import body_complete, raw_body
from genrouter.config import resolve_headers, secret_header_values
from genrouter.errors import (
    AuthenticationError,
    ConfigError,
    MediaError,
    ProviderError,
    ResponseFormatError,
    UnsupportedInputError,
    detach,
    redact,
)
from genrouter.media import is_local_source, resolve_image_source
from genrouter.messages import AssistantMessage
from genrouter.providers._dialect import COMPATIBLE, WireDialect
from genrouter.providers._direct import DirectRoute
from genrouter.providers._errors_http import (
    VLLM_DIALECT,
    ErrorDialect,
    error_from_payload,
    error_from_status,
    error_from_transport,
)
from genrouter.providers._sse import SSEDecoder, SSEFormatError
from genrouter.providers._tool_choice import (
    check_forced_call,
    check_forced_stream,
    named_for_required,
)
from genrouter.providers.base import ProviderCall
from genrouter.request import OPENAI_ONLY_PARAMS, OPENAI_PARAMS
from genrouter.routing.policy import POOL_TIMEOUT
from genrouter.types import ChatCompletion, ChatCompletionChunk

if TYPE_CHECKING:
    from genrouter.config import ProviderConfig
    from genrouter.providers._openai_sdk import OpenAISDKTransport

__all__ = ["OpenAICompatibleProvider"]

_WIRE_PARAMS = frozenset(OPENAI_PARAMS)
_PLATFORM_PARAMS = frozenset(OPENAI_ONLY_PARAMS)
_LIMIT_FIELDS = ("max_tokens", "max_completion_tokens")
_DRAIN_TIMEOUT_S = 0.25
_BACKSTOP_SLACK_S = 1.0


class OpenAICompatibleProvider:
    """A provider for any OpenAI-compatible chat completions endpoint.

    ``http`` is the client's shared connection pool: this provider uses it and never closes it.
    """

    kind: ClassVar[str] = "openai_compatible"
    default_base_url: ClassVar[str | None] = None
    default_key_env: ClassVar[str | None] = None
    key_required: ClassVar[bool] = False
    dialect: ClassVar[WireDialect] = COMPATIBLE
    #: The table that turns this wire's error bodies into typed errors.
    error_dialect: ClassVar[ErrorDialect] = VLLM_DIALECT
    # How this dialect continues a partial assistant answer (resume); see prepare_messages.
    continuation: ClassVar[str] = "instruction"

    def __init__(
        self,
        name: str,
        config: ProviderConfig,
        *,
        http: httpx2.AsyncClient,
        env: Mapping[str, str],
    ) -> None:
        base_url = config.base_url or self.default_base_url
        if not base_url:
            raise ConfigError(
                f"provider {name!r} of type {config.type!r} needs a base_url",
                location=f"providers.{name}.base_url",
            )
        self._name = name
        self._config = config
        self._http = http
        self._env = env
        self._base_url = base_url.rstrip("/")
        self._url = self._base_url + "/chat/completions"
        self._parsed_url: httpx2.URL | None = None  # parsed at the first request, then kept
        # Below httpx2's client layer where it would do nothing (providers/_direct.py); False:
        # not looked at yet, None: httpx2's own path.
        self._direct: DirectRoute | bool | None = False
        self._built_direct: httpx2.Request | None = None  # built by it, for the next _send
        # Headers depend only on the key; rebuilt when the key in the environment changes.
        self._headers_key: tuple[str | None, ...] | None = None
        self._headers: dict[str, str] | None = None
        self._sdk: OpenAISDKTransport | None = None

    # -- identity and credentials -------------------------------------------------------

    @property
    def name(self) -> str:
        """The configured provider name."""
        return self._name

    @property
    def is_remote(self) -> bool:
        """Always true: calls cross the network (even to 127.0.0.1, they leave the process)."""
        return True

    @property
    def base_url(self) -> str:
        """The API root, e.g. ``https://api.openai.com/v1``."""
        return self._base_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, base_url={self._base_url!r})"

    def _api_key(self) -> str | None:
        return self._config.resolve_api_key(self._env, self.default_key_env)

    def has_credentials(self) -> bool:
        """True when a key resolves from the environment, or when none is required."""
        return not self.key_required or self._api_key() is not None

    def _require_key(self, call: ProviderCall) -> str | None:
        key = self._api_key()
        if key is not None and not _usable_in_header(key):
            variable = self._config.key_variable(self.default_key_env) or "api_key_env"
            raise AuthenticationError(
                f"the API key in {variable} has spaces, control or non-ASCII characters; "
                "check the variable's value (the key itself is not shown)",
                provider=self._name,
                model=call.model.model,
                code="malformed_api_key",
            )
        for header, value in self.configured_headers().items():
            if not _usable_in_header(value.replace(" ", "").replace("\t", "") or "x"):
                raise AuthenticationError(
                    f"the value of header {header!r} (from the environment) has control or "
                    "non-ASCII characters; check the variable's value (it is not shown)",
                    provider=self._name,
                    model=call.model.model,
                    code="malformed_header",
                )
        if key is None and self.key_required:
            variable = self._config.key_variable(self.default_key_env) or "api_key_env"
            raise AuthenticationError(
                f"no API key: set the environment variable {variable}",
                provider=self._name,
                model=call.model.model,
                code="missing_api_key",
            )
        return key

    def request_headers(self, key: str | None) -> dict[str, str]:
        """Headers sent with every request (override to add vendor headers)."""
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        headers.update(self.configured_headers())
        return headers

    def configured_headers(self) -> dict[str, str]:
        """The configured ``headers``, ``"${VAR}"`` values read from the environment now."""
        return resolve_headers(self._config.headers, self._env)

    def _headers_for(self, key: str | None) -> dict[str, str]:
        # Rebuilt when the key (or a header read from the environment) changes.
        stamp = (key, *secret_header_values(self._config.headers, self._env))
        if self._headers is None or stamp != self._headers_key:
            self._headers = self.request_headers(key)
            self._headers_key = stamp
        return self._headers

    # -- pure request building ----------------------------------------------------------

    def check_input(self, call: ProviderCall) -> None:
        """Raise :class:`UnsupportedInputError` for input the model cannot take."""
        spec = call.model
        missing = call.request.needs().modalities - spec.input_modalities
        if missing:
            kinds = " and ".join(sorted(missing))
            raise UnsupportedInputError(
                f"model {spec.id!r} does not accept {kinds} input "
                f"(it takes {', '.join(sorted(spec.input_modalities))})",
                param="messages",
            )

    def prepare_messages(self, call: ProviderCall) -> list[dict[str, Any]]:
        """The messages as OpenAI JSON, with the model's system role and no genrouter fields."""
        spec = call.model
        developer = spec.system_role == "developer"
        dialect = self.dialect
        messages: list[dict[str, Any]] = []
        for message in call.request.messages:
            if isinstance(message, AssistantMessage):
                messages.append(dialect.assistant_turn(message, spec))
                continue
            data = message.model_dump(exclude_none=True)
            role = data["role"]
            if role == "system" and developer:
                data["role"] = "developer"
            elif role == "developer" and not developer:
                # Many compatible servers reject "developer"; "system" means the same to them.
                data["role"] = "system"
            messages.append(data)
        last = call.request.messages[-1] if call.request.messages else None
        if last is not None and last.role == "assistant" and getattr(last, "partial", False):
            _continue_partial(messages[-1], messages, self.continuation_method)
        return messages

    @property
    def continuation_method(self) -> str:
        """How a partial assistant answer is continued here (the resume dialect)."""
        return self._config.continuation or self.continuation

    def build_body(self, call: ProviderCall, *, stream: bool) -> dict[str, Any]:
        """The JSON body for *call*, applying the model's wire rules.

        Parameters the model does not support are dropped (and named in
        ``call.dropped_params``) rather than sent to fail with a 400.
        """
        request = call.request
        spec = call.model
        caller = self._accepted(request.wire_params(), call)
        defaults = {k: v for k, v in spec.defaults.items() if k in _WIRE_PARAMS}
        params = {**defaults, **caller}
        if "tool_choice" in params and self.dialect.required_as_named:
            params["tool_choice"] = named_for_required(params["tool_choice"], call)
        limit = request.output_limit
        if limit is None:
            limit = defaults.get("max_completion_tokens") or defaults.get("max_tokens")
        for field in _LIMIT_FIELDS:
            params.pop(field, None)
        if limit is not None:
            params[spec.max_tokens_field] = limit
        for param in spec.unsupported_params:
            if param in params:
                del params[param]
                if param in caller or (param in _LIMIT_FIELDS and request.output_limit):
                    call.dropped_params.append(param)

        body: dict[str, Any] = {"model": spec.model, "messages": self.prepare_messages(call)}
        body.update(params)
        if stream:
            body["stream"] = True
        stream_options = _stream_options(call, stream=stream)
        if stream_options:
            body["stream_options"] = stream_options
        options = request.provider_options.get(self.kind)
        if options:
            body.update(options)
        if request.extra_body:
            body.update(request.extra_body)
        return body

    def _accepted(self, params: dict[str, Any], call: ProviderCall) -> dict[str, Any]:
        """*params* without OpenAI platform parameters this vendor does not take (recorded)."""
        platform = self.dialect.platform_params
        for param in _PLATFORM_PARAMS.intersection(params):
            if param not in platform:
                del params[param]
                call.dropped_params.append(param)
        return params

    def resolve_media(self, messages: list[dict[str, Any]]) -> None:
        """Replace local image paths in *messages* (in place) by data URIs. Reads files."""
        for part in _media_parts(messages):
            if part.get("type") == "image_url":
                image = part["image_url"]
                if is_local_source(image["url"]):
                    image["url"] = resolve_image_source(image["url"])
            elif part.get("type") == "video":
                part["video"] = [
                    resolve_image_source(frame) if is_local_source(frame) else frame
                    for frame in part["video"]
                ]

    # -- error mapping hooks ------------------------------------------------------------

    def _secrets(self) -> tuple[str | None, ...]:
        """What redaction masks: the key and secret header values (``${VAR}`` or key-named)."""
        return (self._api_key(), *secret_header_values(self._config.headers, self._env))

    def map_error(self, status: int, body: bytes, headers: httpx2.Headers) -> ProviderError:
        """The typed error for an HTTP error response."""
        return error_from_status(
            status,
            body,
            headers,
            provider=self._name,
            secrets=self._secrets(),
            dialect=self.error_dialect,
        )

    def is_error_payload(self, payload: Any) -> bool:
        """Whether a JSON body or event that is not a completion is the vendor's error report."""
        return isinstance(payload, dict) and bool(payload.get("error"))

    def map_stream_error(self, payload: dict[str, Any]) -> ProviderError:
        """The typed error for an ``{"error": {...}}`` event inside a stream."""
        return error_from_payload(
            payload, provider=self._name, secrets=self._secrets(), dialect=self.error_dialect
        )

    def _transport_error(self, exc: httpx2.TransportError, call: ProviderCall) -> ProviderError:
        error = error_from_transport(
            exc, provider=self._name, model=call.model.model, secrets=self._secrets()
        )
        if isinstance(exc, httpx2.PoolTimeout):
            error.code = POOL_TIMEOUT  # our own pool was full: not the provider's failure
        return error

    def _status_error(self, response: httpx2.Response, call: ProviderCall) -> ProviderError:
        error = self.map_error(response.status_code, response.content, response.headers)
        return _locate(error, call)

    def _format_error(
        self,
        what: str,
        exc: Exception,
        call: ProviderCall,
        data: bytes,
        *,
        code: str | None = None,
    ) -> ResponseFormatError:
        """A redacted :class:`ResponseFormatError` whose cause is a redacted summary of *exc*.

        The parser's own exception holds the raw bytes (pydantic's ``input_value``, the SSE
        line), which may hold a key the server echoed, so it is never chained as it is: raise
        the result outside the ``except`` block (see :func:`~genrouter.errors.detach`).
        """
        detail = exc.errors(include_url=False)[0]["msg"] if isinstance(exc, ValidationError) else ""
        secrets = self._secrets()
        # Redact the whole text before cutting it: a key cut in half would no longer match.
        shown = redact(data.decode("utf-8", "replace"), secrets)[:200]
        reason = redact(str(detail or exc), secrets)[:300]
        error = ResponseFormatError(
            f"malformed {what}: {reason} (received {shown!r})",
            provider=self._name,
            model=call.model.model,
            code=code,
        )
        return detach(error, exc, secrets)

    def _unparsable(
        self,
        what: str,
        exc: ValidationError,
        call: ProviderCall,
        data: bytes,
        *,
        code: str | None = None,
    ) -> ProviderError:
        """A body or event that did not validate: the vendor's error report, or malformed."""
        payload = _loads(data)
        if self.is_error_payload(payload):
            return detach(_locate(self.map_stream_error(payload), call), exc, self._secrets())
        return self._format_error(what, exc, call, data, code=code)

    # -- transport ----------------------------------------------------------------------

    def _timeout(self, call: ProviderCall) -> httpx2.Timeout:
        """httpx's limits for one call: a backstop behind the executor's clocks.

        The executor owns every time limit (it passes the time the attempt may take as
        ``call.timeout``); reads and writes get a little more so that its own, typed expiry
        fires first. The wait for a free connection in the shared pool gets a little less, so
        a full pool shows as ``pool_timeout`` (our congestion) rather than as the model's
        attempt timeout.
        """
        limits = self._timeout_limits(call)
        return httpx2.Timeout(
            limits["read"], connect=limits["connect"], pool=limits["pool"], write=limits["write"]
        )

    def _timeout_limits(self, call: ProviderCall) -> dict[str, float | None]:
        """:meth:`_timeout` as ``Timeout.as_dict()`` gives it (what the transport reads)."""
        if call.timeout is None:
            total = self._config.timeout_s
            connect = min(self._config.connect_timeout_s, total)
            return {"connect": connect, "read": total, "write": total, "pool": total}
        backstop = call.timeout + _BACKSTOP_SLACK_S
        return {
            "connect": min(self._config.connect_timeout_s, backstop),
            "read": backstop,
            "write": backstop,
            "pool": max(call.timeout * 0.9, 0.001),
        }

    async def _prepare(
        self, call: ProviderCall, *, stream: bool
    ) -> tuple[dict[str, Any], str | None]:
        self.check_input(call)
        key = self._require_key(call)
        body = self.build_body(call, stream=stream)
        messages = body.get("messages")
        if isinstance(messages, list) and _has_local_media(messages):
            await _read_media_in_time(self.resolve_media, messages, call.timeout)
        return body, key

    def _request(self, body: dict[str, Any], key: str | None, call: ProviderCall) -> httpx2.Request:
        request = call.request
        headers = self._headers_for(key)
        if request.extra_headers:
            headers = {**headers, **request.extra_headers}
        url = self._parsed_url
        if url is None:
            # Parsing the URL is about half of httpx2's build_request (~25 µs): do it once.
            url = self._parsed_url = httpx2.URL(self._url)
        content = to_json(body)
        direct = self._direct_route(url)
        if direct is not None:
            built = direct.build(
                url, headers, content, request.extra_query or None, self._timeout_limits(call)
            )
            if built is not None:
                # _send follows at once (no await between): it need not ask usable() again.
                self._built_direct = built
                return built
        return self._http.build_request(
            "POST",
            url,
            content=content,
            headers=headers,
            params=request.extra_query or None,
            timeout=self._timeout(call),
        )

    def _direct_route(self, url: httpx2.URL) -> DirectRoute | None:
        """The route below httpx2's client layer, when it is usable for this request."""
        direct = self._direct
        if direct is False:
            direct = self._direct = DirectRoute.for_pool(self._http, url)
        if isinstance(direct, DirectRoute) and direct.usable():
            return direct
        return None

    async def _send(self, request: httpx2.Request, *, stream: bool = False) -> httpx2.Response:
        """``self._http.send``, or the same request straight onto its transport."""
        direct: DirectRoute | None
        built_by = self._direct
        if request is self._built_direct and isinstance(built_by, DirectRoute):
            self._built_direct = None
            direct = built_by
        else:
            self._built_direct = None
            direct = self._direct_route(request.url)
        if direct is not None:
            return await direct.send(request, stream=stream)
        return await self._http.send(request, stream=stream)

    def _sdk_transport(self, key: str | None) -> OpenAISDKTransport:
        stamp = (key, *secret_header_values(self._config.headers, self._env))
        if self._sdk is None or self._sdk.stamp != stamp:
            from genrouter.providers._openai_sdk import OpenAISDKTransport

            self._sdk = OpenAISDKTransport(
                api_key=key,
                base_url=self._base_url,
                http=self._http,
                headers=self.request_headers(key),
            )
            self._sdk.stamp = stamp
        return self._sdk

    async def complete(self, call: ProviderCall) -> ChatCompletion:
        """Send *call* and return the whole answer."""
        body, key = await self._prepare(call, stream=False)
        if self._config.use_sdk:
            content = await self._sdk_transport(key).complete(self, call, body, self._timeout(call))
            return check_forced_call(self.parse_completion(content, call), call)
        try:
            response = await self._send(self._request(body, key, call))
        except httpx2.TransportError as exc:
            raise self._transport_error(exc, call) from exc
        except httpx2.DecodingError as exc:  # e.g. a body that claims gzip but is not
            raise self._format_error("response body", exc, call, b"") from exc
        if response.status_code >= 300:
            raise self._status_error(response, call)
        return check_forced_call(self.parse_completion(response.content, call), call)

    def parse_completion(self, content: bytes, call: ProviderCall) -> ChatCompletion:
        """Validate a non-streamed answer; an ``{"error": ...}`` body raises its typed error."""
        try:
            return ChatCompletion.model_validate_json(content)
        except ValidationError as exc:
            head = content.lstrip()[:1]
            code = "empty_body" if not head else (None if head in b"{[" else "not_json")
            failure = self._unparsable("completion", exc, call, content, code=code)
        raise failure  # outside the except: the raw validation error must not become context

    async def stream(self, call: ProviderCall) -> AsyncGenerator[ChatCompletionChunk, None]:
        """Send *call* with ``stream: true`` and yield chunks as they arrive.

        The HTTP response is closed when the generator ends, however it ends (finished,
        ``aclose()`` by a caller that stopped early, cancellation), so the connection goes
        back to the pool or is dropped, never leaked. A connection that breaks raises
        ``ProviderConnectionError(code="connection_lost")``; a body that ends cleanly simply
        ends (the executor judges whether the answer finished).
        """
        body, key = await self._prepare(call, stream=True)
        if self._config.use_sdk:
            async with self._sdk_transport(key).open_stream(
                self, call, body, self._timeout(call)
            ) as response:
                async for chunk in check_forced_stream(self.iter_chunks(response, call), call):
                    yield chunk
            return
        try:
            response = await self._send(self._request(body, key, call), stream=True)
        except httpx2.TransportError as exc:
            raise self._transport_error(exc, call) from exc
        except httpx2.DecodingError as exc:
            raise self._format_error("response body", exc, call, b"") from exc
        try:
            if response.status_code >= 300:
                try:
                    await response.aread()
                except httpx2.TransportError as exc:
                    raise self._transport_error(exc, call) from exc
                except httpx2.DecodingError as exc:
                    raise self._format_error("error body", exc, call, b"") from exc
                raise self._status_error(response, call)
            async for chunk in check_forced_stream(self.iter_chunks(response, call), call):
                yield chunk
        finally:
            await response.aclose()

    async def iter_chunks(
        self, response: httpx2.Response, call: ProviderCall
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        """Parse an open SSE response into chunks until ``[DONE]`` or the body's end.

        It reports the wire as it is: whether the answer is complete (its ``finish_reason``
        arrived) is the executor's judgement. A 200 whose body holds no event at all (empty,
        what llama.cpp's server sends for a prompt over its context) or is not an event stream
        (an HTML error page) raises :class:`ResponseFormatError` with code ``empty_body`` /
        ``not_event_stream``. The caller closes the response.
        """
        content_type = response.headers.get("content-type", "")
        if content_type.startswith("text/html"):
            body = await _read_some(response)
            raise self._format_error(
                "event stream", ValueError("an HTML page"), call, body, code="not_event_stream"
            )
        decoder = SSEDecoder()
        events = 0
        malformed: ProviderError | None = None
        try:
            pieces = raw_body(response) or response.aiter_bytes()
            async with contextlib.aclosing(pieces) as byte_stream:
                async for raw in byte_stream:
                    for _event, data in decoder.feed(raw):
                        events += 1
                        if data.strip() == b"[DONE]":
                            await _drain(response, byte_stream)
                            return
                        yield self._parse_chunk(data, call)
            for _event, data in decoder.flush():
                events += 1
                if data.strip() == b"[DONE]":
                    return
                yield self._parse_chunk(data, call)
        except httpx2.TransportError as exc:
            raise self._transport_error(exc, call) from exc
        except httpx2.DecodingError as exc:
            raise self._format_error("event stream", exc, call, b"") from exc
        except SSEFormatError as exc:
            code = None if events else "not_event_stream"
            malformed = self._format_error("event stream", exc, call, exc.line, code=code)
        if malformed is not None:
            raise malformed  # outside the except: the offending line may hold a key
        if not events:
            raise ResponseFormatError(
                "HTTP 200 with an empty event stream (no event, no [DONE])",
                provider=self._name,
                model=call.model.model,
                code="empty_body",
            )

    def _parse_chunk(self, data: bytes, call: ProviderCall) -> ChatCompletionChunk:
        # A literal "error" token is rare in chunks, so this check costs one bytes search.
        if b'"error"' in data:
            payload = _loads(data)
            if isinstance(payload, dict) and payload.get("error"):
                raise _locate(self.map_stream_error(payload), call)
        try:
            # The validator itself: model_validate_json's wrapper costs ~0.4 us per chunk.
            return ChatCompletionChunk.__pydantic_validator__.validate_json(data)  # type: ignore[no-any-return]
        except ValidationError as exc:
            failure = self._unparsable("stream chunk", exc, call, data)
        raise failure  # outside the except: the raw validation error must not become context

    async def aclose(self) -> None:
        """Forget the SDK client, if any. The shared HTTP client belongs to the caller."""
        self._sdk = None


CONTINUE_INSTRUCTION = (
    "Continue your previous answer exactly where it stopped, mid-word if need be. "
    "Do not repeat any of it and do not comment: write only the rest."
)


def _continue_partial(
    assistant: dict[str, Any], messages: list[dict[str, Any]], method: str
) -> None:
    """Mark the trailing partial assistant message the way the dialect *method* resumes it.

    ``partial``: DashScope's ``"partial": true``; ``prefix``: DeepSeek's ``"prefix": true``
    (its beta endpoint); ``instruction``: a server without prefill sees a finished turn, so a
    user turn asks it to go on (the executor trims any text it repeats).
    """
    assistant.pop("partial", None)
    if method == "partial":
        assistant["partial"] = True
    elif method == "prefix":
        assistant["prefix"] = True
    else:
        messages.append({"role": "user", "content": CONTINUE_INSTRUCTION})


async def _read_some(response: httpx2.Response, limit: int = 2048) -> bytes:
    """Up to *limit* bytes of a body that is not what was expected (for the error message)."""
    data = b""
    with contextlib.suppress(httpx2.TransportError, httpx2.DecodingError, TimeoutError):
        async with asyncio.timeout(_DRAIN_TIMEOUT_S):
            async for piece in response.aiter_bytes():
                data += piece
                if len(data) >= limit:
                    break
    return data[:limit]


def _stream_options(call: ProviderCall, *, stream: bool) -> dict[str, Any] | None:
    """The caller's ``stream_options`` as sent: usage is always asked for where the model
    reports it (route info and cost need it); whether the caller sees the usage-only chunk
    is the stream's business. Without ``stream``, OpenAI refuses them: dropped."""
    options = dict(call.request.stream_options or ())
    if not stream:
        if options:
            call.dropped_params.append("stream_options")
        return None
    if call.model.streaming_usage:
        options["include_usage"] = True
    else:
        options.pop("include_usage", None)
    return options


async def _drain(response: httpx2.Response, byte_stream: AsyncIterator[bytes]) -> None:
    # The end of the chunked body usually follows [DONE] by microseconds. Reading it lets the
    # connection go back to the pool; closing before it would discard the connection and make
    # the next request pay for a new one (measured: +0.8 ms on loopback). A server that keeps
    # the body open after [DONE] only costs this short wait, then the connection is dropped.
    # When genrouter's transport has already seen the whole message, closing keeps it.
    if body_complete(response):
        return
    with contextlib.suppress(httpx2.TransportError, httpx2.DecodingError, TimeoutError):
        async with asyncio.timeout(_DRAIN_TIMEOUT_S):
            async for _rest in byte_stream:
                pass


async def _read_media_in_time(
    resolve: Callable[[list[dict[str, Any]]], None],
    messages: list[dict[str, Any]],
    timeout: float | None,
) -> None:
    """Read local media on a thread, within the time the request has left."""
    try:
        async with asyncio.timeout(timeout):
            await asyncio.to_thread(resolve, messages)
    except TimeoutError:
        raise MediaError(
            f"reading local media took longer than the request's {timeout:.1f}s left"
        ) from None


def _usable_in_header(key: str) -> bool:
    """A key that can travel in an HTTP header as it is: printable ASCII, no spaces."""
    # An ASCII printable string's only whitespace character is the space itself.
    return key.isascii() and key.isprintable() and " " not in key


def _locate(error: ProviderError, call: ProviderCall) -> ProviderError:
    if error.model is None:
        error.model = call.model.model
    return error


def _loads(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


def _media_parts(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for message in messages:
        content = message.get("content")
        if message.get("role") == "user" and isinstance(content, list):
            parts.extend(p for p in content if p.get("type") in ("image_url", "video"))
    return parts


def _has_local_media(messages: list[dict[str, Any]]) -> bool:
    for part in _media_parts(messages):
        if part.get("type") == "image_url":
            if is_local_source(part["image_url"]["url"]):
                return True
        elif any(is_local_source(frame) for frame in part["video"]):
            return True
    return False
