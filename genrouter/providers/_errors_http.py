"""HTTP status, error body and transport failure -> genrouter's typed errors. Pure functions.

The classification is one table, written once, shared by every OpenAI-style provider (and
the SDK path): a status and a vendor code choose the class, the body supplies the message,
code and request id, the headers supply ``Retry-After``. Every message passes through
:func:`~genrouter.errors.redact` with the provider's keys, because vendors echo keys back.

Status to class::

    400, 413, 422  BadRequestError (context_length_exceeded -> ContextWindowExceededError,
                   content_filter / content_policy_violation / data_inspection_failed
                   -> ContentFilteredError)
    401       AuthenticationError          403  PermissionDeniedError
    404       NotFoundError                408  ProviderTimeoutError
    409, 5xx  ServerError                  429  RateLimitError (insufficient_quota -> BillingError)

Each wire dialect is one :class:`ErrorDialect` table: :data:`OPENAI_DIALECT` (OpenAI's codes and
``type`` values) and :data:`VLLM_DIALECT` (OpenAI-compatible servers: OpenAI's plus vLLM's
exception names and llama.cpp's types); DashScope's lives in
:mod:`genrouter.providers.dashscope`. An error inside a stream has no HTTP status: a status
carried in the body (``status_code``, ``status`` or vLLM's integer ``code``) stands in for it,
then the dialect's ``type`` table decides. ``x-should-retry: true/false`` (OpenAI's header) is
kept on the error as ``should_retry`` and routing obeys it.

Transport failures: failing to connect (refused, DNS, connect timeout) is
``ProviderConnectionError(code="connect_failed")``; the connection breaking after the request
went out is ``ProviderConnectionError(code="connection_lost")``; read, write and pool timeouts
are :class:`ProviderTimeoutError`.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx2

from genrouter.errors import (
    AuthenticationError,
    BadRequestError,
    BillingError,
    ContentFilteredError,
    ContextWindowExceededError,
    NotFoundError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
    redact,
)

__all__ = [
    "CONNECTION_LOST",
    "CONNECT_FAILED",
    "CONTENT_FILTER_CODES",
    "CONTEXT_WINDOW_CODES",
    "OPENAI_DIALECT",
    "VLLM_DIALECT",
    "ErrorDialect",
    "ErrorFields",
    "classify",
    "error_fields",
    "error_from_payload",
    "error_from_status",
    "error_from_transport",
    "parse_retry_after",
    "should_retry_header",
    "status_in_payload",
]

CONNECT_FAILED = "connect_failed"
CONNECTION_LOST = "connection_lost"

CONTEXT_WINDOW_CODES = frozenset({"context_length_exceeded", "string_above_max_length"})
CONTENT_FILTER_CODES = frozenset(
    {
        "content_filter",
        "content_policy_violation",
        "data_inspection_failed",
        "DataInspectionFailed",
        "inappropriate_content",
    }
)
BILLING_CODES = frozenset({"insufficient_quota", "Arrearage", "billing_hard_limit_reached"})
# Some servers put the reason only in the message; these phrases are stable across vendors.
_CONTEXT_PHRASES = ("maximum context length", "context length", "context window", "too many tokens")

_STATUS_CLASSES: dict[int, type[ProviderError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: ProviderTimeoutError,
    409: ServerError,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
}


@dataclass(frozen=True, slots=True)
class ErrorDialect:
    """How one wire dialect names its errors: one table per dialect, read by :func:`classify`.

    ``codes`` maps a vendor error code to a class and wins over the HTTP status (a 429 with
    ``insufficient_quota`` is a :class:`BillingError`). ``types`` maps the error ``type`` to a
    class and is used only when no HTTP status is known (an error event inside a stream).
    """

    name: str
    codes: Mapping[str, type[ProviderError]]
    types: Mapping[str, type[ProviderError]]
    context_phrases: tuple[str, ...] = _CONTEXT_PHRASES


_CODE_CLASSES: dict[str, type[ProviderError]] = {
    **dict.fromkeys(CONTENT_FILTER_CODES, ContentFilteredError),
    **dict.fromkeys(BILLING_CODES, BillingError),
    **dict.fromkeys(CONTEXT_WINDOW_CODES, ContextWindowExceededError),
}

#: OpenAI's error ``type`` values (platform.openai.com/docs/guides/error-codes; openai-python
#: ``_exceptions.py`` names the same classes by status).
OPENAI_DIALECT: Final = ErrorDialect(
    "openai",
    codes={**_CODE_CLASSES, "invalid_api_key": AuthenticationError},
    types={
        "invalid_request_error": BadRequestError,
        "authentication_error": AuthenticationError,
        "permission_error": PermissionDeniedError,
        "not_found_error": NotFoundError,
        "rate_limit_error": RateLimitError,
        "tokens": RateLimitError,
        "requests": RateLimitError,
        "insufficient_quota": BillingError,
        "server_error": ServerError,
        "api_error": ServerError,
        "timeout_error": ProviderTimeoutError,
    },
)

#: OpenAI-compatible servers: OpenAI's table plus vLLM's (its ``ErrorResponse`` names the
#: Python exception: ``{"object": "error", "type": "BadRequestError", "code": 400}``, or the
#: same inside ``{"error": {...}}``) and llama.cpp's server (``exceed_context_size_error``,
#: ``not_supported_error``, ``unavailable_error``).
VLLM_DIALECT: Final = ErrorDialect(
    "openai_compatible",
    codes=OPENAI_DIALECT.codes,
    types={
        **OPENAI_DIALECT.types,
        "BadRequestError": BadRequestError,
        "NotFoundError": NotFoundError,
        "UnauthorizedError": AuthenticationError,
        "AuthenticationError": AuthenticationError,
        "PermissionDeniedError": PermissionDeniedError,
        "RateLimitError": RateLimitError,
        "InternalServerError": ServerError,
        "ServiceUnavailableError": ServerError,
        "NotImplementedError": BadRequestError,
        "exceed_context_size_error": ContextWindowExceededError,
        "not_supported_error": BadRequestError,
        "unavailable_error": ServerError,
    },
)


class ErrorFields:
    """What an error body says: message, vendor code, type and request id (each may be absent)."""

    __slots__ = ("code", "message", "request_id", "type")

    def __init__(
        self,
        message: str | None = None,
        code: str | None = None,
        type: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.message = message
        self.code = code
        self.type = type
        self.request_id = request_id


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def error_fields(payload: Any) -> ErrorFields:
    """Read an error from a decoded body: OpenAI's ``{"error": {...}}`` or a flat object.

    The flat shape (``{"code", "message", "request_id"}``) is what DashScope and many
    compatible servers send.
    """
    if not isinstance(payload, Mapping):
        return ErrorFields(message=_text(payload))
    inner = payload.get("error")
    request_id = _text(payload.get("request_id")) or _text(payload.get("id"))
    if isinstance(inner, Mapping):
        return ErrorFields(
            message=_text(inner.get("message")),
            code=_text(inner.get("code")),
            type=_text(inner.get("type")),
            request_id=request_id or _text(inner.get("request_id")),
        )
    if isinstance(inner, str):
        return ErrorFields(message=inner, code=_text(payload.get("code")), request_id=request_id)
    return ErrorFields(
        message=_text(payload.get("message")),
        code=_text(payload.get("code")),
        type=_text(payload.get("type")),
        request_id=request_id,
    )


def classify(
    status: int | None,
    code: str | None,
    message: str | None,
    *,
    type: str | None = None,
    dialect: ErrorDialect = VLLM_DIALECT,
) -> type[ProviderError]:
    """The error class for an HTTP status (``None`` for an in-stream error), vendor code and type.

    Order: a known vendor code; an over-long prompt told in the message; the HTTP status; with
    no status, the dialect's ``type`` table; else :class:`ServerError` for an in-stream error
    (the stream failed on the provider's side) and :class:`BadRequestError` for another 4xx.
    """
    by_code = dialect.codes.get(code) if code else None
    if by_code is not None:
        return by_code
    lowered = (message or "").lower()
    if status in (None, 400, 413, 422) and any(p in lowered for p in dialect.context_phrases):
        return ContextWindowExceededError
    if status is None:
        return dialect.types.get(type or "", ServerError)
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    if status >= 500:
        return ServerError
    return BadRequestError


def should_retry_header(headers: Mapping[str, str]) -> bool | None:
    """The server's explicit word on retrying: ``x-should-retry: true`` / ``false`` (OpenAI).

    openai-python obeys it before looking at the status (``_base_client.py``
    ``_should_retry``); ``None`` when absent or neither value.
    """
    value = (headers.get("x-should-retry") or "").strip().lower()
    return True if value == "true" else False if value == "false" else None


def status_in_payload(*sources: object) -> int | None:
    """An HTTP-like status carried inside an error body: ``status_code``, ``status``, or an
    integer ``code`` (vLLM's ``"code": 400``), in 400-599; the first found wins."""
    for source in sources:
        if not isinstance(source, Mapping):
            continue
        for key in ("status_code", "status", "code"):
            value = source.get(key)
            if isinstance(value, str) and value.isdigit() and key == "code":
                value = int(value)
            if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
                return value
    return None


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date).

    Returns ``None`` when neither header is present or parses; never a negative number.
    *headers* must look keys up case-insensitively (``httpx2.Headers`` does) or use lower case.
    """
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        seconds = _finite(raw_ms)
        if seconds is not None:
            return max(seconds / 1000.0, 0.0)
    raw = headers.get("retry-after")
    if not raw:
        return None
    seconds = _finite(raw)
    if seconds is not None:
        return max(seconds, 0.0)
    try:
        moment = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(moment.timestamp() - current, 0.0)


def _finite(text: str) -> float | None:
    """A finite number from a header value, or ``None`` ("nan" and "inf" are not waits)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _decode_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def error_from_status(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    provider: str | None = None,
    model: str | None = None,
    secrets: Iterable[str | None] = (),
    dialect: ErrorDialect = VLLM_DIALECT,
) -> ProviderError:
    """The typed error for an HTTP error response (*headers* looked up case-insensitively)."""
    secrets = tuple(secrets)
    payload = _decode_body(body)
    fields = error_fields(payload) if payload is not None else ErrorFields()
    if fields.message is None:
        snippet = redact(body.decode("utf-8", "replace").strip(), secrets)[:300]
        fields.message = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    request_id = headers.get("x-request-id") or fields.request_id
    cls = classify(status, fields.code, fields.message, type=fields.type, dialect=dialect)
    where: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "status_code": status,
        "code": fields.code,
        "request_id": request_id,
    }
    message = redact(fields.message, secrets)
    return cls(
        message,
        retry_after=parse_retry_after(headers),
        should_retry=should_retry_header(headers),
        **where,
    )


def error_from_payload(
    payload: Mapping[str, Any],
    *,
    provider: str | None = None,
    model: str | None = None,
    secrets: Iterable[str | None] = (),
    dialect: ErrorDialect = VLLM_DIALECT,
) -> ProviderError:
    """The typed error for an ``{"error": {...}}`` event inside a stream (no HTTP status).

    A status carried in the payload (``status_code``, ``status``, or an integer ``code`` as vLLM
    sends) is used like an HTTP status; otherwise the vendor code and the dialect's ``type``
    table decide, and an unknown error is a :class:`ServerError` (the stream failed on the
    provider's side).
    """
    fields = error_fields(payload)
    status = status_in_payload(payload.get("error"), payload)
    code = None if fields.code is not None and fields.code.isdigit() else fields.code
    cls = classify(status, code, fields.message, type=fields.type, dialect=dialect)
    message = redact(fields.message or "the provider reported an error in the stream", secrets)
    return cls(
        message,
        provider=provider,
        model=model,
        status_code=status,
        code=code,
        request_id=fields.request_id,
    )


def error_from_transport(
    exc: httpx2.TransportError,
    *,
    provider: str | None = None,
    model: str | None = None,
    secrets: Iterable[str | None] = (),
) -> ProviderError:
    """The typed error for an httpx2 transport failure. The caller raises it ``from exc``."""
    detail = redact(str(exc) or type(exc).__name__, secrets)
    where: dict[str, Any] = {"provider": provider, "model": model}
    if isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout):
        return ProviderConnectionError(f"could not connect: {detail}", code=CONNECT_FAILED, **where)
    if isinstance(exc, httpx2.TimeoutException):  # read, write, pool
        return ProviderTimeoutError(f"timed out ({type(exc).__name__}): {detail}", **where)
    if isinstance(exc, httpx2.ReadError | httpx2.WriteError | httpx2.RemoteProtocolError):
        return ProviderConnectionError(f"connection lost: {detail}", code=CONNECTION_LOST, **where)
    return ProviderConnectionError(f"transport error: {detail}", code="transport_error", **where)
