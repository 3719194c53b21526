"""Pure translation of a :class:`ChatRequest` into what a local model needs.

No llama.cpp here: turning messages into turns (folding the system prompt when the model
wants none), the ``Q:``/``A:`` prompt for base models without a chat template, sampling
arguments (catalog defaults under the caller's values) and the grammar that structured
output asks for. The worker renders chat templates and compiles grammars from these.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from genrouter.catalog import ModelSpec
from genrouter.errors import InvalidRequestError, UnsupportedInputError
from genrouter.messages import (
    AssistantMessage,
    DeveloperMessage,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
    first_validation_error,
    message_text,
)
from genrouter.request import OPENAI_ONLY_PARAMS, ChatRequest

__all__ = [
    "NAMED_TEMPLATES",
    "QA_STOPS",
    "GrammarSpec",
    "LocalOptions",
    "PromptPlan",
    "Turn",
    "build_qa_prompt",
    "build_turns",
    "caller_stops",
    "calls_text",
    "choose_template",
    "grammar_spec",
    "parse_local_options",
    "plan_prompt",
    "sampling_arguments",
    "tool_result_text",
]

Role = Literal["system", "user", "assistant"]

# Where a base model's answer ends: it goes on to invent the next question, or rambles on
# after a blank line (FACTS.md: gemma-3-270m answers "Q: …\nA:" prompts).
QA_STOPS: tuple[str, ...] = ("\nQ:", "\n\n")

# Parameters a local model cannot honour; they are dropped and reported, not refused.
_DROPPED_PARAMS: tuple[str, ...] = (
    "logprobs",
    "top_logprobs",
    "user",
    "reasoning_effort",
    *OPENAI_ONLY_PARAMS,
    "extra_headers",
    "extra_query",
)

_SAMPLING_DEFAULT_KEYS = frozenset(
    {"temperature", "top_p", "min_p", "top_k", "repeat_penalty", "presence_penalty",
     "frequency_penalty"}
)  # fmt: skip


class LocalOptions(BaseModel):
    """``provider_options["local"]``: llama.cpp sampling knobs OpenAI has no name for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    repeat_penalty: float | None = Field(default=None, gt=0)
    grammar: str | None = Field(default=None, min_length=1)


def parse_local_options(request: ChatRequest) -> LocalOptions:
    """Validate ``provider_options["local"]``; unknown keys raise :class:`InvalidRequestError`."""
    raw = request.provider_options.get("local") or {}
    try:
        return LocalOptions.model_validate(raw)
    except ValidationError as exc:
        loc, msg = first_validation_error(exc, "provider_options.local")
        raise InvalidRequestError(msg, param=loc) from None


@dataclass(frozen=True, slots=True)
class Turn:
    """One message reduced to its role and text."""

    role: Role
    text: str


def _user_text(message: UserMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    for part in message.content:
        if not isinstance(part, TextPart):
            raise UnsupportedInputError(
                f"local models take text only, not {part.type!r} parts", param="messages"
            )
    return message_text(message.content)


def build_turns(
    request: ChatRequest, spec: ModelSpec, tool_text: str | None = None
) -> tuple[list[Turn], str | None]:
    """The conversation as turns, and the text of a trailing partial assistant message.

    ``spec.system_prompt == "fold_into_user"`` (DeepSeek-R1: "avoid adding a system prompt;
    all instructions should be contained within the user prompt") moves system text to the
    start of the first user turn. Earlier reasoning is not sent back, as R1's guidance says.
    *tool_text* (the tools and their call format) opens the system text. Earlier tool calls
    are written in that format; tool results become user turns (consecutive ones merged), which
    every chat template accepts.
    """
    turns: list[Turn] = []
    system_parts: list[str] = []
    partial: str | None = None
    messages = list(request.messages)
    last = messages[-1] if messages else None
    if isinstance(last, AssistantMessage) and last.partial:
        partial = message_text(last.content)
        messages = messages[:-1]
    if tool_text:
        if spec.system_prompt == "fold_into_user":
            system_parts.append(tool_text)
        else:
            turns.append(Turn("system", tool_text))
    call_names: dict[str, str] = {}
    for message in messages:
        if isinstance(message, SystemMessage | DeveloperMessage):
            text = message_text(message.content)
            if spec.system_prompt == "fold_into_user":
                system_parts.append(text)
            elif tool_text and len(turns) == 1 and turns[0].role == "system":
                turns[-1] = Turn("system", f"{turns[-1].text}\n\n{text}")
            else:
                turns.append(Turn("system", text))
        elif isinstance(message, UserMessage):
            turns.append(Turn("user", _user_text(message)))
        elif isinstance(message, AssistantMessage):
            call_names.update({c.id: c.function.name for c in message.tool_calls or ()})
            turns.append(Turn("assistant", calls_text(message)))
        elif isinstance(message, ToolMessage):
            _add_tool_result(turns, tool_result_text(message, call_names))
    if system_parts:
        _fold_system(turns, "\n\n".join(p for p in system_parts if p))
    return turns, partial


def _add_tool_result(turns: list[Turn], text: str) -> None:
    if turns and turns[-1].role == "user" and turns[-1].text.startswith("Result of "):
        turns[-1] = Turn("user", f"{turns[-1].text}\n{text}")
    else:
        turns.append(Turn("user", text))


def _fold_system(turns: list[Turn], folded: str) -> None:
    for i, turn in enumerate(turns):
        if turn.role == "user":
            turns[i] = Turn("user", f"{folded}\n\n{turn.text}" if folded else turn.text)
            return
    turns.insert(0, Turn("user", folded))


def calls_text(message: AssistantMessage) -> str:
    """An earlier assistant turn, its tool calls in the call format the model was taught."""
    if not message.tool_calls:
        return message_text(message.content)
    calls = []
    for call in message.tool_calls or ():
        try:
            arguments: object = json.loads(call.function.arguments)
        except ValueError:
            arguments = call.function.arguments
        calls.append({"name": call.function.name, "arguments": arguments})
    text = message_text(message.content)
    rendered = json.dumps(calls)
    return f"{text}\n{rendered}" if text else rendered


def tool_result_text(message: ToolMessage, names: Mapping[str, str]) -> str:
    """A tool's result as the text of a user turn."""
    name = names.get(message.tool_call_id, message.tool_call_id)
    return f"Result of {name} (call {message.tool_call_id}): {message_text(message.content)}"


def build_qa_prompt(turns: list[Turn], partial: str | None = None) -> str:
    """A ``Q: …`` / ``A: …`` prompt for a base model that has no chat template.

    System text opens the prompt as a plain preamble; the prompt ends with ``A:`` (plus any
    partial answer to continue) so that the model's next words are the answer.
    """
    lines: list[str] = []
    for turn in turns:
        if turn.role == "system":
            lines.append(f"{turn.text}\n")
        elif turn.role == "user":
            lines.append(f"Q: {turn.text}\n")
        else:
            lines.append(f"A: {turn.text}\n")
    lines.append(f"A: {partial}" if partial else "A:")
    return "".join(lines)


@dataclass(frozen=True, slots=True)
class GrammarSpec:
    """The output constraint: a GBNF grammar, a JSON schema, or any JSON object."""

    kind: Literal["gbnf", "json_schema", "json_object"]
    source: str | None = None  # GBNF text, or the schema as JSON text


def grammar_spec(request: ChatRequest, options: LocalOptions) -> GrammarSpec | None:
    """Translate ``response_format`` (or the ``grammar`` option) into a grammar to compile."""
    import json

    fmt = request.response_format
    kind = (fmt or {}).get("type")
    if options.grammar is not None:
        if kind not in (None, "text"):
            raise InvalidRequestError(
                "give either response_format or provider_options.local.grammar, not both",
                param="response_format",
            )
        return GrammarSpec("gbnf", options.grammar)
    if fmt is None or kind == "text":
        return None
    if kind == "json_object":
        # llama-cpp-python's own extension: {"type": "json_object", "schema": {...}}.
        schema = fmt.get("schema")
        if isinstance(schema, Mapping):
            return GrammarSpec("json_schema", json.dumps(schema))
        return GrammarSpec("json_object")
    if kind == "json_schema":
        wrapper = fmt.get("json_schema")
        schema = wrapper.get("schema") if isinstance(wrapper, Mapping) else None
        if not isinstance(schema, Mapping):
            raise InvalidRequestError(
                "json_schema.schema must be a JSON schema object",
                param="response_format.json_schema.schema",
            )
        return GrammarSpec("json_schema", json.dumps(schema))
    raise InvalidRequestError(f"unknown response_format type {kind!r}", param="response_format")


def sampling_arguments(
    request: ChatRequest, spec: ModelSpec, options: LocalOptions, dropped: list[str]
) -> dict[str, Any]:
    """Keyword arguments for ``Llama.create_completion``: catalog defaults, then the caller's.

    Parameters a local model cannot honour are appended to *dropped*; ones that make no
    sense here (several choices) raise :class:`UnsupportedInputError`.
    """
    if request.n not in (None, 1):
        raise UnsupportedInputError("local models return one choice (n=1)", param="n")
    args: dict[str, Any] = {
        k: v for k, v in spec.defaults.items() if k in _SAMPLING_DEFAULT_KEYS and v is not None
    }
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty", "seed"):
        value = getattr(request, name)
        if value is not None:
            args[name] = value
    for name in ("min_p", "top_k", "repeat_penalty"):
        value = getattr(options, name)
        if value is not None:
            args[name] = value
    if request.logit_bias:
        try:
            args["logit_bias"] = {int(k): float(v) for k, v in request.logit_bias.items()}
        except ValueError:
            raise InvalidRequestError(
                "logit_bias keys must be token ids", param="logit_bias"
            ) from None
    # Without a limit llama-cpp-python stops after 16 tokens; the catalog's limit is the cap.
    args["max_tokens"] = min(request.output_limit or spec.max_output_tokens, spec.max_output_tokens)
    dropped.extend(name for name in _DROPPED_PARAMS if getattr(request, name) is not None)
    if request.parallel_tool_calls is not None and not request.tools:
        dropped.append("parallel_tool_calls")  # meaningful only with tools
    return args


def caller_stops(request: ChatRequest) -> list[str]:
    """The caller's stop strings as a list."""
    stop = request.stop
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)


# Chat formats a catalog entry may name when its GGUF carries no template.
NAMED_TEMPLATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "chatml": (
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
        "{{ message['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        ("<|im_end|>",),
    ),
}


def choose_template(
    spec: ModelSpec, gguf_template: str | None
) -> tuple[str | None, tuple[str, ...]]:
    """The chat template to render (``None``: use Q/A) and the stops that go with it.

    ``chat_format="qa"`` forces the Q/A prompt; a name from :data:`NAMED_TEMPLATES` uses
    that format; otherwise the GGUF's own ``tokenizer.chat_template``, if it has one.
    """
    if spec.chat_format == "qa":
        return None, ()
    if spec.chat_format is not None:
        named = NAMED_TEMPLATES.get(spec.chat_format)
        if named is None:
            raise InvalidRequestError(
                f"unknown chat_format {spec.chat_format!r} for {spec.id}; "
                f"use 'qa', {', '.join(map(repr, NAMED_TEMPLATES))} or none (the GGUF's own)",
                param="model",
            )
        return named
    return gguf_template, ()


@dataclass(frozen=True, slots=True)
class PromptPlan:
    """The conversation and stop strings; the worker renders it once the model is loaded,
    with the GGUF's chat template or, without one, as a Q/A prompt."""

    turns: list[Turn]
    partial: str | None
    stops: list[str]


def plan_prompt(request: ChatRequest, spec: ModelSpec, tool_text: str | None = None) -> PromptPlan:
    """Validate and reduce the request's messages; raises on input a local model cannot take."""
    turns, partial = build_turns(request, spec, tool_text)
    return PromptPlan(turns=turns, partial=partial, stops=caller_stops(request))
