"""``tool_choice`` on the OpenAI-style wire: what each vendor is sent, and the forced-call check.

OpenAI takes every form (``"auto"``, ``"none"``, ``"required"``, ``{"type": "function",
"function": {"name": ...}}``). Other servers take fewer:

* llama-cpp-python's server (0.3.36, read in ``llama_cpp/llama_chat_format.py`` and measured
  on the Gemma demo model, 2026-12-02) honours only a *named* choice with its generic chat
  formats (``--chat_format alpaca``, ``chatml``...): a grammar from that function's schema.
  ``"auto"``, ``"required"`` and ``"none"`` are ignored there, and the tools are not even shown
  to the model, so the answer is plain text. With ``--chat_format chatml-function-calling``,
  ``"required"`` fails the request (HTTP 500 with an empty message; streamed, HTTP 200 with an
  empty body) while ``"auto"`` and named choices work.
* DashScope: see :mod:`genrouter.providers.dashscope` (forced choices are refused in
  thinking mode).

So ``"required"`` with exactly one tool is sent as that tool's named choice wherever the
dialect says so: with a single tool, "call a tool" and "call this tool" ask for the same
thing, and the named form is the one every server above honours. The translation is noted
in ``RouteInfo.notes``. With several tools ``"required"`` goes as it is, and
:func:`check_forced_call` turns an answer that calls no tool into a typed error, so routing
moves on to the next candidate instead of handing back text the caller's loop cannot use.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from genrouter.errors import StructuredOutputError

if TYPE_CHECKING:
    from genrouter.providers.base import ProviderCall
    from genrouter.request import ChatRequest
    from genrouter.types import ChatCompletion, ChatCompletionChunk

__all__ = [
    "check_forced_call",
    "check_forced_stream",
    "forced_tool_choice",
    "named_for_required",
]


def forced_tool_choice(request: ChatRequest) -> bool:
    """Whether the request obliges the model to call a tool (``"required"`` or a named one)."""
    choice = request.tool_choice
    if choice == "required":
        return bool(request.tools)
    return isinstance(choice, Mapping) and choice.get("type") == "function"


def named_for_required(choice: object, call: ProviderCall) -> object:
    """*choice* as sent: ``"required"`` with exactly one function tool becomes that tool's
    named choice (recorded in ``call.notes``); anything else is returned unchanged."""
    tools = call.request.tools or ()
    if choice != "required" or len(tools) != 1:
        return choice
    function = tools[0].get("function")
    name = function.get("name") if isinstance(function, Mapping) else None
    if tools[0].get("type", "function") != "function" or not isinstance(name, str):
        return choice
    call.notes.append(
        f"tool_choice 'required' sent as the named function {name!r} (the only tool): "
        f"{call.model.id} honours a named choice"
    )
    return {"type": "function", "function": {"name": name}}


def check_forced_call(completion: ChatCompletion, call: ProviderCall) -> ChatCompletion:
    """*completion* if it honours a forced ``tool_choice``; else :class:`StructuredOutputError`.

    A forced call cut off by ``max_tokens`` still arrives as a tool call (OpenAI, llama.cpp's
    grammar), so an answer with none, cut off or not, was text the server chose to write.
    """
    if not forced_tool_choice(call.request):
        return completion
    for choice in completion.choices:
        if not choice.message.tool_calls:
            raise _not_honoured(call, choice.message.content, choice.finish_reason)
    return completion


def check_forced_stream(
    chunks: AsyncGenerator[ChatCompletionChunk, None], call: ProviderCall
) -> AsyncIterator[ChatCompletionChunk]:
    """*chunks*, checked like :func:`check_forced_call` when the request forces a call.

    The check fires at the first text before any tool call (or at the end when no call came),
    so that routing can still hand the request to another candidate before the caller sees
    text. Without a forced choice *chunks* come back as they are (no per-chunk cost).
    """
    if not forced_tool_choice(call.request):
        return chunks
    return _checked(chunks, call)


async def _checked(
    chunks: AsyncGenerator[ChatCompletionChunk, None], call: ProviderCall
) -> AsyncGenerator[ChatCompletionChunk, None]:
    called = False
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            if not called:
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta.tool_calls:
                        called = True
                    elif delta.content and delta.content.strip():
                        raise _not_honoured(call, delta.content, choice.finish_reason)
            yield chunk
    if not called:
        raise _not_honoured(call, None, None)


def _not_honoured(
    call: ProviderCall, content: str | None, finish_reason: str | None
) -> StructuredOutputError:
    choice: Any = call.request.tool_choice
    ended = f" (finish_reason={finish_reason!r})" if finish_reason else ""
    return StructuredOutputError(
        f"tool_choice={choice!r} obliges a tool call, but the answer called none{ended}: "
        f"this server does not honour it",
        content=content,
        provider=call.model.provider,
        model=call.model.model,
    )
