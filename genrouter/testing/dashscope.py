"""DashScope's error replies, for :class:`~genrouter.testing.FakeLLMServer` scripts.

Each function returns a :class:`Reply` whose status and body are shaped the way DashScope's
compatible mode answers (``{"error": {"code", "message", "type", "param"}, "id",
"request_id"}``), or, with ``native=True``, the way its native API does (``{"code",
"message", "request_id"}``). :func:`data_inspection_event` is the payload of an error event
sent inside a stream, for ``Reply(error_event=...)``.

Example::

    server.enqueue(dashscope.throttling(retry_after=2))
"""

from __future__ import annotations

from typing import Any

from genrouter.testing._replies import Reply

__all__ = [
    "DEFAULT_REQUEST_ID",
    "allocation_quota",
    "arrearage",
    "compatible_error_body",
    "context_too_long",
    "data_inspection_event",
    "data_inspection_failed",
    "error_reply",
    "internal_error",
    "invalid_api_key",
    "model_not_found",
    "native_error_body",
    "throttling",
]

DEFAULT_REQUEST_ID = "5e1a0c1e-7b0e-9a5d-a1b2-c3d4e5f60718"


def compatible_error_body(
    code: str, message: str, *, type: str | None = None, request_id: str = DEFAULT_REQUEST_ID
) -> dict[str, Any]:
    """An error body as DashScope's OpenAI-compatible endpoint sends it."""
    return {
        "error": {"code": code, "param": None, "message": message, "type": type or code},
        "id": f"chatcmpl-{request_id}",
        "request_id": request_id,
    }


def native_error_body(
    code: str, message: str, *, request_id: str = DEFAULT_REQUEST_ID
) -> dict[str, Any]:
    """An error body as DashScope's native API sends it."""
    return {"code": code, "message": message, "request_id": request_id}


def error_reply(
    status: int,
    code: str,
    message: str,
    *,
    native_code: str | None = None,
    type: str | None = None,
    native: bool = False,
    headers: dict[str, str] | None = None,
    request_id: str = DEFAULT_REQUEST_ID,
) -> Reply:
    """A DashScope HTTP error reply (compatible shape, or native with *native_code*)."""
    body = (
        native_error_body(native_code or code, message, request_id=request_id)
        if native
        else compatible_error_body(code, message, type=type, request_id=request_id)
    )
    return Reply.error(status, body=body, headers=headers)


def invalid_api_key(*, native: bool = False, request_id: str = DEFAULT_REQUEST_ID) -> Reply:
    """401: the key is unknown here (often: a key issued for another region)."""
    return error_reply(
        401,
        "invalid_api_key",
        "Incorrect API key provided. ",
        native_code="InvalidApiKey",
        type="invalid_request_error",
        native=native,
        request_id=request_id,
    )


def throttling(
    *,
    code: str = "Throttling.RateQuota",
    retry_after: float | None = None,
    request_id: str = DEFAULT_REQUEST_ID,
) -> Reply:
    """429 with a ``Throttling*`` code and, when given, a ``Retry-After`` header."""
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    return error_reply(
        429,
        code,
        "Requests rate limit exceeded, please try again later.",
        headers=headers,
        request_id=request_id,
    )


def allocation_quota(*, request_id: str = DEFAULT_REQUEST_ID) -> Reply:
    """429 ``Throttling.AllocationQuota`` as compatible mode words it (``insufficient_quota``).

    Despite OpenAI's billing wording this is a per-minute token quota that recovers.
    """
    return error_reply(
        429,
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
        request_id=request_id,
    )


def arrearage(*, native: bool = False, request_id: str = DEFAULT_REQUEST_ID) -> Reply:
    """400 ``Arrearage``: the account is overdue."""
    return error_reply(
        400,
        "Arrearage",
        "Access denied, please make sure your account is in good standing.",
        native=native,
        request_id=request_id,
    )


def data_inspection_failed(*, native: bool = False, request_id: str = DEFAULT_REQUEST_ID) -> Reply:
    """400: the content filter refused the input."""
    return error_reply(
        400,
        "data_inspection_failed",
        "Input data may contain inappropriate content.",
        native_code="DataInspectionFailed",
        native=native,
        request_id=request_id,
    )


def data_inspection_event(*, request_id: str = DEFAULT_REQUEST_ID) -> dict[str, Any]:
    """The error event DashScope sends inside a stream when the filter stops the output."""
    return compatible_error_body(
        "data_inspection_failed",
        "Output data may contain inappropriate content.",
        request_id=request_id,
    )


def model_not_found(model: str, *, request_id: str = DEFAULT_REQUEST_ID) -> Reply:
    """404: no such model (or not available to this account/region)."""
    return error_reply(
        404,
        "model_not_found",
        f"The model `{model}` does not exist or you do not have access to it.",
        native_code="ModelNotFound",
        request_id=request_id,
    )


def context_too_long(*, request_id: str = DEFAULT_REQUEST_ID) -> Reply:
    """400 ``InvalidParameter``: the prompt does not fit the model."""
    return error_reply(
        400,
        "InvalidParameter",
        "Range of input length should be [1, 30720]",
        type="invalid_request_error",
        request_id=request_id,
    )


def internal_error(*, request_id: str = DEFAULT_REQUEST_ID) -> Reply:
    """500 ``InternalError``."""
    return error_reply(
        500,
        "InternalError",
        "An internal error has occured, please try again later or contact service support.",
        request_id=request_id,
    )
