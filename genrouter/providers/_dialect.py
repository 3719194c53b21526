"""What each OpenAI-style vendor wants on the wire, as data (one :class:`WireDialect` each).

The transport and the request building are shared (:mod:`genrouter.providers.openai_compat`);
the differences between OpenAI, DashScope's compatible mode and other compatible servers are
the values below: which of OpenAI's platform parameters a vendor takes, which assistant-turn
fields it accepts back in the history, and what it needs in ``content`` on a turn that only
calls tools.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from genrouter.catalog import ModelSpec
from genrouter.messages import AssistantMessage
from genrouter.request import OPENAI_ONLY_PARAMS

__all__ = ["COMPATIBLE", "DASHSCOPE", "OPENAI", "WireDialect"]


@dataclass(frozen=True, slots=True)
class WireDialect:
    """One vendor's wire rules for OpenAI's chat format.

    ``platform_params``: which of :data:`~genrouter.request.OPENAI_ONLY_PARAMS` it takes (the
    rest are dropped and named in ``RouteInfo.dropped_params``). ``assistant_fields``: the
    fields of an earlier assistant turn it accepts besides ``role``, ``content`` and
    ``tool_calls``. ``tool_call_content``: the ``content`` written on a tool-call turn that has
    none (``None``: leave the key out). ``reasoning_history``: whether earlier turns'
    ``reasoning_content`` goes back (``"reasoning_models"``: for models marked ``reasoning``).
    ``required_as_named``: whether ``tool_choice="required"`` with exactly one tool is sent
    as that tool's named choice (see :mod:`genrouter.providers._tool_choice`).
    """

    platform_params: frozenset[str]
    assistant_fields: frozenset[str]
    tool_call_content: str | None
    reasoning_history: Literal["never", "reasoning_models"] = "never"
    required_as_named: bool = False

    def assistant_turn(self, message: AssistantMessage, spec: ModelSpec) -> dict[str, Any]:
        """An earlier assistant turn as this vendor takes it back."""
        data: dict[str, Any] = {"role": "assistant"}
        if message.content is not None:
            content = message.content
            data["content"] = (
                content if isinstance(content, str) else [p.model_dump() for p in content]
            )
        if message.tool_calls:
            data["tool_calls"] = [
                {"id": c.id, "type": c.type, "function": c.function.model_dump()}
                for c in message.tool_calls
            ]
            if message.content is None and self.tool_call_content is not None:
                data["content"] = self.tool_call_content
        for field in self.assistant_fields:
            value = getattr(message, field)
            if value is not None:
                data[field] = value.model_dump() if hasattr(value, "model_dump") else value
        if (
            message.reasoning_content is not None
            and self.reasoning_history == "reasoning_models"
            and spec.reasoning
        ):
            data["reasoning_content"] = message.reasoning_content
        return data


#: OpenAI itself: every platform parameter; ``content`` may be missing next to ``tool_calls``;
#: earlier reasoning is never sent back (OpenAI returns none as text).
OPENAI = WireDialect(
    platform_params=frozenset(OPENAI_ONLY_PARAMS),
    assistant_fields=frozenset({"name", "refusal", "audio", "function_call"}),
    tool_call_content=None,
)

#: Other OpenAI-compatible servers (vLLM, llama.cpp's server, Ollama...): the common
#: generation parameters only; chat templates index ``message['content']``, so a tool-call
#: turn carries an empty one.
COMPATIBLE = WireDialect(
    platform_params=frozenset(),
    assistant_fields=frozenset({"name"}),
    tool_call_content="",
    # llama.cpp's server ignores "required" (or fails on it) but honours a named choice.
    required_as_named=True,
)

#: DashScope's compatible mode. It rejects a tool-call turn without a ``content`` key
#: (``400 Field required: input.messages.N.content``, reported publicly against another SDK,
#: agentscope-java#1270), keeps ``partial`` (its continuation mode), and its thinking models
#: take earlier turns' ``reasoning_content`` back (Model Studio "Deep thinking" guide,
#: help.aliyun.com/zh/model-studio/deep-thinking, read 2026-12-01; the multi-turn rule is
#: unverified against a live endpoint). ``modalities``/``audio`` are Qwen-Omni's.
DASHSCOPE = WireDialect(
    platform_params=frozenset({"modalities", "audio"}),
    assistant_fields=frozenset({"name", "partial"}),
    tool_call_content="",
    reasoning_history="reasoning_models",
    # Model Studio documents "required"; agentscope, Alibaba's own framework, still calls it
    # unsupported by the DashScope API (see genrouter.providers.dashscope): a named choice is
    # accepted by both readings.
    required_as_named=True,
)
