"""What the fake server answers: the :class:`Reply` script and the OpenAI-shaped payloads."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Reply", "completion_payload", "error_payload", "split_text", "stream_payloads"]

_PIECES = re.compile(r"\s*\S+|\s+")
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    408: "timeout",
    409: "conflict",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


@dataclass(kw_only=True)
class Reply:
    """One scripted answer of :class:`~genrouter.testing.FakeLLMServer`.

    Build one with a constructor (:meth:`text`, :meth:`error`, :meth:`tool_call`) or directly
    with fields. The answer text is ``content`` (``Reply.text("Hi")`` sets it); without
    ``content`` or ``chunks`` the server echoes the last user message.

    Fields:

    - ``content``: the answer text; streamed split at word boundaries.
    - ``reasoning``: visible reasoning, sent as ``reasoning_content`` before the answer.
    - ``chunks``: the exact content pieces to stream (overrides the split of ``content``).
    - ``status``, ``headers``, ``body``: an HTTP error (any status but 200) with these headers
      and this body (a dict is sent as JSON, ``str``/``bytes`` as they are).
    - ``delay_headers_s``: wait before the status line.
    - ``delay_first_token_s``: wait before the first content piece (non-stream: before the body).
    - ``delay_between_chunks_s``: wait between streamed pieces.
    - ``cut_after``: close the socket after this many pieces, without ``[DONE]`` (non-stream:
      after half the body).
    - ``malformed``: ``"json"`` sends invalid JSON (as the body or inside a ``data:`` event),
      ``"sse"`` sends a body that is not an event stream.
    - ``error_event`` / ``error_after``: send ``data: <error_event as JSON>`` after this many
      pieces, then end the stream without ``[DONE]``.
    - ``omit_finish_reason``: end the stream with a bare ``data: [DONE]`` and no finish
      reason, the way llama.cpp's server ends a generation it interrupted.
    - ``body_200``: answer ``200`` with this raw body instead (``b""``: an empty event stream,
      as llama.cpp's server sends for a prompt over its context; an HTML page: a proxy's
      error page); sent as ``text/event-stream`` unless ``headers`` set a content type.
    - ``stall_after`` / ``stall_s``: stop sending for ``stall_s`` seconds after this many
      pieces (a stream that stalls mid-answer), then go on.
    - ``drop_after_finish``: close the socket right after the finish-reason chunk, before
      ``[DONE]`` and usage.
    - ``usage_every_chunk``: repeat running usage totals on every chunk (as some servers do).
    - ``usage``: the usage object to report (default: simple word counts).
    - ``no_usage``: report no usage at all (llama.cpp's server, some vLLM setups).
    - ``finish_reason``: default ``"stop"`` (``"tool_calls"`` with tool calls).
    - ``tool_calls``: OpenAI tool call objects to return. Streamed as OpenAI streams them:
      one chunk with the call's ``id`` and ``name``, then its ``arguments`` in pieces.
    - ``refusal``: a refusal message (``message.refusal``; streamed as ``delta.refusal``).
    """

    content: str | None = None
    reasoning: str | None = None
    chunks: list[str] | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | str | bytes | None = None
    delay_headers_s: float = 0.0
    delay_first_token_s: float = 0.0
    delay_between_chunks_s: float = 0.0
    cut_after: int | None = None
    malformed: Literal["json", "sse"] | None = None
    error_event: dict[str, Any] | None = None
    error_after: int = 0
    usage: dict[str, Any] | None = None
    omit_finish_reason: bool = False
    body_200: bytes | None = None
    stall_after: int | None = None
    stall_s: float = 0.0
    drop_after_finish: bool = False
    usage_every_chunk: bool = False
    no_usage: bool = False
    finish_reason: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    refusal: str | None = None

    @classmethod
    def text(cls, text: str, **fields: Any) -> Reply:
        """A normal answer saying *text* (other fields as keywords)."""
        return cls(content=text, **fields)

    @classmethod
    def error(
        cls,
        status: int,
        *,
        code: str | None = None,
        message: str | None = None,
        type: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | str | bytes | None = None,
        **fields: Any,
    ) -> Reply:
        """An HTTP error. Without *body*, OpenAI's shape:
        ``{"error": {"message", "type", "param", "code"}}``."""
        if body is None:
            body = error_payload(status, code=code, message=message, type=type, param=param)
        return cls(status=status, headers=dict(headers or {}), body=body, **fields)

    @classmethod
    def tool_call(
        cls, name: str, arguments: str | dict[str, Any], *, id: str = "call_0", **fields: Any
    ) -> Reply:
        """An answer that calls the function *name* with *arguments*."""
        args = arguments if isinstance(arguments, str) else json.dumps(arguments)
        call = {"id": id, "type": "function", "function": {"name": name, "arguments": args}}
        return cls(tool_calls=[call], **fields)

    @classmethod
    def tool_calls_to(cls, *calls: tuple[str, str | dict[str, Any]], **fields: Any) -> Reply:
        """An answer that calls several functions at once (parallel tool calls), in order;
        ids are ``call_0``, ``call_1``…"""
        made = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
            for i, (name, args) in enumerate(calls)
        ]
        return cls(tool_calls=made, **fields)

    def pieces(self, fallback: str) -> list[str]:
        """The content pieces to stream, falling back to *fallback* split at words."""
        if self.chunks is not None:
            return list(self.chunks)
        if (self.tool_calls or self.refusal) and self.content is None:
            return []
        return split_text(self.content if self.content is not None else fallback)


def _argument_pieces(arguments: str, size: int = 8) -> list[str]:
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


def split_text(text: str) -> list[str]:
    """Split *text* into word-sized pieces that join back to it exactly."""
    return _PIECES.findall(text)


def error_payload(
    status: int,
    *,
    code: str | None = None,
    message: str | None = None,
    type: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """OpenAI's error body for *status*."""
    default_type = "server_error" if status >= 500 else _ERROR_TYPES.get(status, "api_error")
    return {
        "error": {
            "message": message or f"fake error {status}" + (f" ({code})" if code else ""),
            "type": type or default_type,
            "param": param,
            "code": code,
        }
    }


def _usage(reply: Reply, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    if reply.usage is not None:
        return reply.usage
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _finish_reason(reply: Reply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")


def completion_payload(
    reply: Reply, *, model: str, ident: str, created: int, pieces: list[str], prompt_tokens: int
) -> dict[str, Any]:
    """A ``chat.completion`` object for *reply*."""
    message: dict[str, Any] = {"role": "assistant", "content": "".join(pieces) or None}
    if reply.reasoning is not None:
        message["reasoning_content"] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = reply.tool_calls
    if reply.refusal is not None:
        message["refusal"] = reply.refusal
    reasoning_count = len(split_text(reply.reasoning)) if reply.reasoning else 0
    return {
        "id": ident,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(reply)}],
        "usage": None
        if reply.no_usage
        else _usage(reply, prompt_tokens, len(pieces) + reasoning_count),
    }


def stream_payloads(
    reply: Reply,
    *,
    model: str,
    ident: str,
    created: int,
    pieces: list[str],
    prompt_tokens: int,
    include_usage: bool,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``chat.completion.chunk`` objects for *reply*: ``(opening, text pieces, closing)``.

    The text pieces (reasoning, then content) are what ``cut_after`` and ``error_after``
    count; the opening chunk carries the role, the closing ones the finish reason and usage.
    """

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    opening = [chunk({"role": "assistant", "content": ""})]
    reasoning = split_text(reply.reasoning) if reply.reasoning else []
    texts = [chunk({"reasoning_content": p}) for p in reasoning]
    texts += [chunk({"content": p}) for p in pieces]
    closing: list[dict[str, Any]] = []
    if reply.refusal is not None:
        closing.append(chunk({"refusal": reply.refusal}))
    for i, call in enumerate(reply.tool_calls or ()):
        function = call.get("function", {})
        head = {**call, "index": i, "function": {**function, "arguments": ""}}
        closing.append(chunk({"tool_calls": [head]}))
        for piece in _argument_pieces(str(function.get("arguments", ""))):
            closing.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
    if not reply.omit_finish_reason:
        closing.append(chunk({}, _finish_reason(reply)))
    if reply.usage_every_chunk:
        for sent, payload in enumerate(texts, start=1):
            payload["usage"] = _usage(reply, prompt_tokens, sent)
        for payload in closing:
            payload["usage"] = _usage(reply, prompt_tokens, len(texts))
    elif include_usage and not reply.no_usage:
        usage_chunk = chunk({})
        usage_chunk["choices"] = []
        usage_chunk["usage"] = _usage(reply, prompt_tokens, len(texts))
        closing.append(usage_chunk)
    return opening, texts, closing
