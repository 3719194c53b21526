"""What the gateway writes on the wire: OpenAI's error shape, SSE framing, request parsing.

Errors are OpenAI's ``{"error": {"message", "type", "param", "code"}}`` with the HTTP status
the openai SDKs map to their exception classes. :func:`error_for` is the one table from
genrouter's typed errors to ``(status, type, code)``; every message passes through
:func:`~genrouter.errors.redact` with the provider keys the server knows, so no key leaves.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from genrouter.errors import (
    AllCandidatesFailedError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ContextWindowExceededError,
    DeadlineExceededError,
    GenRouterError,
    InvalidRequestError,
    MediaError,
    ModelRetiredError,
    NoCandidateError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    redact,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = [
    "DONE",
    "ApiError",
    "chunk_event",
    "error_body",
    "error_for",
    "request_params",
    "sse",
    "stream_error_event",
]

#: The last event of a stream that ended well (a broken one never gets it).
DONE = b"data: [DONE]\n\n"

# genrouter's own transport keywords: never taken from the wire (a client could otherwise
# set the upstream's headers or query). Any other field create() does not know is passed to
# the provider as it came (it is what the caller's SDK put there from its ``extra_body``).
_TRANSPORT = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})
_IMAGE_SCHEMES = ("data:", "http://", "https://")


class ApiError(Exception):
    """An error answer: HTTP *status* and OpenAI's error fields (raised inside the server)."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str,
        code: str | None = None,
        param: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.retry_after_s = retry_after_s

    def body(self) -> bytes:
        return error_body(self.message, self.type, self.code, self.param)

    def headers(self) -> list[tuple[bytes, bytes]]:
        if self.retry_after_s is None:
            return []
        return [(b"retry-after", str(max(math.ceil(self.retry_after_s), 1)).encode())]


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    error = {"message": message, "type": type_, "param": param, "code": code}
    return json.dumps({"error": error}).encode()


def stream_error_event(error: ApiError) -> bytes:
    """The in-band event that ends a broken stream (no ``[DONE]`` follows).

    ``data: {"error": {...}}``: the openai SDKs raise ``APIError`` on it (openai-python's
    ``Stream.__stream__`` checks ``data.get("error")`` on every event).
    """
    return b"data: " + error.body() + b"\n\n"


def sse(payload: str) -> bytes:
    """One ``data:`` event around a JSON text (JSON never holds a raw newline)."""
    return b"data: " + payload.encode() + b"\n\n"


def chunk_event(chunk: BaseModel) -> bytes:
    """*chunk* as one ``data:`` event: the bytes of ``model_dump_json()``, straight from the
    serializer (no text decoding and re-encoding per event)."""
    return b"data: " + chunk.__pydantic_serializer__.to_json(chunk) + b"\n\n"


def _members(exc: AllCandidatesFailedError) -> list[BaseException]:
    found: list[BaseException] = []
    for member in exc.exceptions:
        if isinstance(member, AllCandidatesFailedError):
            found.extend(_members(member))
        else:
            found.append(member)
    return found


def _all(members: Sequence[BaseException], kind: Any) -> bool:
    return bool(members) and all(isinstance(m, kind) for m in members)


def _retry_after(members: Iterable[BaseException]) -> float | None:
    waits = [m.retry_after for m in members if isinstance(m, ProviderError) and m.retry_after]
    return min(waits) if waits else None


def _all_failed(exc: AllCandidatesFailedError, message: str) -> ApiError:
    members = _members(exc)
    if _all(members, RateLimitError):
        return ApiError(
            429, message, "rate_limit_error", "upstream_rate_limited", None, _retry_after(members)
        )
    if _all(members, DeadlineExceededError):
        return ApiError(504, message, "timeout", "deadline_exceeded")
    if _all(members, ContextWindowExceededError):
        return ApiError(400, message, "invalid_request_error", "context_length_exceeded")
    if _all(members, BadRequestError):
        return ApiError(400, message, "invalid_request_error", "upstream_rejected")
    if _all(members, ProviderConnectionError | ServerError | ProviderTimeoutError):
        return ApiError(503, message, "server_error", "upstream_unavailable")
    return ApiError(502, message, "server_error", "all_candidates_failed")


# Errors whose answer depends on the class alone, most specific first.
_BY_CLASS: tuple[tuple[type[GenRouterError], int, str, str | None], ...] = (
    (BudgetExceededError, 429, "insufficient_quota", "budget_exceeded"),
    (NoCandidateError, 503, "server_error", "no_candidate"),
    (StreamInterruptedError, 502, "server_error", "stream_interrupted"),
    (DeadlineExceededError, 504, "timeout", "deadline_exceeded"),
    (RateLimitError, 429, "rate_limit_error", "upstream_rate_limited"),
    # The *upstream* refused the server's provider key: the caller's request is not at
    # fault, and a 401 would read as "your gateway key is wrong".
    (AuthenticationError, 502, "server_error", "upstream_auth_failed"),
    (PermissionDeniedError, 502, "server_error", "upstream_auth_failed"),
    (ContextWindowExceededError, 400, "invalid_request_error", "context_length_exceeded"),
    (BadRequestError, 400, "invalid_request_error", "upstream_rejected"),
    (ProviderError, 502, "server_error", "upstream_error"),
)


def error_for(exc: GenRouterError, secrets: Iterable[str | None] = ()) -> ApiError:
    """OpenAI's status, type and code for one of genrouter's errors (message redacted)."""
    message = redact(str(exc), secrets)
    if isinstance(exc, ModelRetiredError):
        return ApiError(404, message, "invalid_request_error", "model_retired", "model")
    if isinstance(exc, InvalidRequestError | MediaError):
        param = exc.param
        if param == "model" and "unknown model" in message:
            return ApiError(404, message, "invalid_request_error", "model_not_found", param)
        return ApiError(400, message, "invalid_request_error", None, param)
    if isinstance(exc, AllCandidatesFailedError):
        tried = "; ".join(str(m) for m in _members(exc)[:8])
        return _all_failed(exc, redact(f"{exc.message}: {tried}", secrets))
    for kind, status, type_, code in _BY_CLASS:
        if isinstance(exc, kind):
            return ApiError(status, message, type_, code)
    return ApiError(500, message, "server_error", "internal_error")


def _is_mapping(value: object) -> bool:
    # JSON objects arrive as dicts: the exact-type test spares the ABC check per item.
    return type(value) is dict or isinstance(value, Mapping)


def _check_images(messages: Any) -> None:
    """Refuse local file paths in image (and video frame) parts: only data: and http(s)."""
    if not isinstance(messages, list):
        return
    for i, message in enumerate(messages):
        content = message.get("content") if _is_mapping(message) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            if not _is_mapping(part):
                continue
            kind = part.get("type")
            where = f"messages[{i}].content[{j}]"
            urls: list[tuple[str, Any]] = []
            if kind == "image_url":
                image = part.get("image_url")
                url = image.get("url") if isinstance(image, Mapping) else image
                urls.append((f"{where}.image_url.url", url))
            elif kind == "video":
                frames = part.get("video")
                if isinstance(frames, list):
                    urls.extend((f"{where}.video[{k}]", f) for k, f in enumerate(frames))
            for param, url in urls:
                if isinstance(url, str) and not url.lower().startswith(_IMAGE_SCHEMES):
                    raise ApiError(
                        400,
                        "only data: URIs and http(s) URLs are accepted by the gateway; "
                        "a local file path is refused",
                        "invalid_request_error",
                        "invalid_image_url",
                        param,
                    )


def request_params(body: Any, known: frozenset[str]) -> dict[str, Any]:
    """The keyword arguments for ``create()`` from a request body (checks only its shape:
    the client's own door, :func:`genrouter.request.build_request`, checks the rest)."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", "invalid_request_error")
    if "messages" not in body:
        raise ApiError(
            400, "'messages' is a required property", "invalid_request_error", None, "messages"
        )
    _check_images(body.get("messages"))
    params: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, value in body.items():
        if name in known and name not in _TRANSPORT:
            params[name] = value
        else:
            extra[name] = value
    if extra:
        params["extra_body"] = extra
    if not isinstance(params.get("stream", False), bool | None):
        raise ApiError(400, "must be a boolean", "invalid_request_error", None, "stream")
    model = params.get("model")
    if model is None:
        params["model"] = "auto"
    elif not isinstance(model, str):
        raise ApiError(400, "must be a string", "invalid_request_error", None, "model")
    return params
