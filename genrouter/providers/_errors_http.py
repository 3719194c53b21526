"""HTTP status, error body and transport failure -> genrouter's typed errors. Pure functions.

The classification is one table, written once, shared by every OpenAI-style provider (and
the SDK path): a status and a vendor code choose the class, the body supplies the message,
code and request id, the headers supply ``Retry-After``. Every message passes through
:func:`~genrouter.errors.redact` with the provider's keys, because vendors echo keys back.

Status to class::

    400, 422  BadRequestError (context_length_exceeded -> ContextWindowExceededError,
              content_filter / content_policy_violation / data_inspection_failed
              -> ContentFilteredError)
    401       AuthenticationError          403  PermissionDeniedError
    404       NotFoundError                408  ProviderTimeoutError
    409, 5xx  ServerError                  429  RateLimitError (insufficient_quota -> BillingError)

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
from typing import Any

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
    "ErrorFields",
    "classify",
    "error_fields",
    "error_from_payload",
    "error_from_status",
    "error_from_transport",
    "parse_retry_after",
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
    422: BadRequestError,
    429: RateLimitError,
}


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


def classify(status: int | None, code: str | None, message: str | None) -> type[ProviderError]:
    """The error class for an HTTP status (``None`` for an in-stream error) and vendor code."""
    lowered = (message or "").lower()
    if code in CONTENT_FILTER_CODES:
        return ContentFilteredError
    if code in BILLING_CODES:
        return BillingError
    if code in CONTEXT_WINDOW_CODES or (
        status in (None, 400, 413, 422) and any(p in lowered for p in _CONTEXT_PHRASES)
    ):
        return ContextWindowExceededError
    if status is None:
        return ServerError
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    if status >= 500:
        return ServerError
    return BadRequestError


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
) -> ProviderError:
    """The typed error for an HTTP error response (*headers* looked up case-insensitively)."""
    secrets = tuple(secrets)
    payload = _decode_body(body)
    fields = error_fields(payload) if payload is not None else ErrorFields()
    if fields.message is None:
        snippet = redact(body.decode("utf-8", "replace").strip(), secrets)[:300]
        fields.message = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    request_id = headers.get("x-request-id") or fields.request_id
    cls = classify(status, fields.code, fields.message)
    where: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "status_code": status,
        "code": fields.code,
        "request_id": request_id,
    }
    message = redact(fields.message, secrets)
    return cls(message, retry_after=parse_retry_after(headers), **where)


def error_from_payload(
    payload: Mapping[str, Any],
    *,
    provider: str | None = None,
    model: str | None = None,
    secrets: Iterable[str | None] = (),
) -> ProviderError:
    """The typed error for an ``{"error": {...}}`` event inside a stream (no HTTP status).

    A numeric ``status``/``status_code`` in the payload, when present, is used like an HTTP
    status; otherwise the vendor code alone decides, and unknown codes are a
    :class:`ServerError` (the stream failed on the provider's side).
    """
    fields = error_fields(payload)
    inner = payload.get("error")
    status: int | None = None
    for source in (inner, payload):
        if isinstance(source, Mapping):
            candidate = source.get("status_code", source.get("status"))
            if isinstance(candidate, int) and 400 <= candidate <= 599:
                status = candidate
                break
    cls = classify(status, fields.code, fields.message)
    message = redact(fields.message or "the provider reported an error in the stream", secrets)
    return cls(
        message,
        provider=provider,
        model=model,
        status_code=status,
        code=fields.code,
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
