"""Tool calling for local models: a call format the prompt teaches and a grammar can force.

llama.cpp models have no tool API of their own, so genrouter gives them one (pure, no
llama.cpp here):

* The tools are described in a system turn, with the format to answer in: a JSON array of
  calls, ``[{"name": "<function>", "arguments": {...}}]``.
* ``tool_choice="required"`` or ``{"type": "function", "function": {"name": ...}}`` compiles
  that format, restricted to the allowed functions and their parameter schemas, into a
  grammar: the model cannot answer anything but a valid call (``parallel_tool_calls=False``
  or a named function allows exactly one). ``"auto"`` leaves the model free; an answer in
  the call format becomes ``tool_calls``, anything else stays text. ``"none"`` hides the
  tools.
* Earlier calls and their results come back into the prompt in the same format, so a
  multi-turn tool loop reads as one conversation to the model.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from genrouter.errors import InvalidRequestError
from genrouter.providers.local._prompt import GrammarSpec
from genrouter.request import ChatRequest

__all__ = ["LocalToolCall", "ToolPlan", "parse_calls", "plan_tools"]


@dataclass(frozen=True, slots=True)
class LocalToolCall:
    """A call the model made: OpenAI's ``id``, function ``name`` and JSON ``arguments``."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """How one request's tools reach a local model, and how its answer is read back."""

    names: tuple[str, ...]
    instructions: str
    grammar: GrammarSpec | None  # set when a call is forced
    parallel: bool

    @property
    def forced(self) -> bool:
        return self.grammar is not None


def _functions(request: ChatRequest) -> list[Mapping[str, Any]]:
    functions: list[Mapping[str, Any]] = []
    for index, tool in enumerate(request.tools or ()):
        function = tool.get("function")
        if tool.get("type", "function") != "function" or not isinstance(function, Mapping):
            raise InvalidRequestError(
                "local models take function tools only", param=f"tools[{index}]"
            )
        if not isinstance(function.get("name"), str) or not function["name"]:
            raise InvalidRequestError("a function needs a name", param=f"tools[{index}].function")
        functions.append(function)
    return functions


def _chosen(request: ChatRequest, names: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """``(mode, allowed names)`` from ``tool_choice``: mode is auto, required or none."""
    choice = request.tool_choice
    if choice is None or choice in ("auto", "none", "required"):
        return str(choice or "auto"), tuple(names)
    if isinstance(choice, Mapping):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        if choice.get("type") == "function" and isinstance(name, str):
            if name not in names:
                raise InvalidRequestError(
                    f"tool_choice names {name!r}, which is not among the tools",
                    param="tool_choice",
                )
            return "required", (name,)
    raise InvalidRequestError(
        'expected "none", "auto", "required" or {"type": "function", "function": {"name": ...}}',
        param="tool_choice",
    )


def _call_schema(function: Mapping[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    parameters = dict(function.get("parameters") or {"type": "object", "properties": {}})
    defs.update(parameters.pop("$defs", {}) or {})
    return {
        "type": "object",
        "properties": {"name": {"const": function["name"]}, "arguments": parameters},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def _grammar(functions: Sequence[Mapping[str, Any]], parallel: bool) -> GrammarSpec:
    defs: dict[str, Any] = {}
    calls = [_call_schema(f, defs) for f in functions]
    items: dict[str, Any] = calls[0] if len(calls) == 1 else {"anyOf": calls}
    schema: dict[str, Any] = {"type": "array", "items": items, "minItems": 1}
    if not parallel:
        schema["maxItems"] = 1
    if defs:
        schema["$defs"] = defs
    return GrammarSpec("json_schema", json.dumps(schema))


def _instructions(functions: Sequence[Mapping[str, Any]], forced: bool, parallel: bool) -> str:
    lines = ["You can call these functions:"]
    for function in functions:
        description = function.get("description") or ""
        parameters = json.dumps(function.get("parameters") or {})
        lines.append(f"- {function['name']}: {description} Parameters (JSON schema): {parameters}")
    many = "one or more calls" if parallel else "exactly one call"
    lines.append(
        f"To call functions, answer with only a JSON array of {many}: "
        '[{"name": "<function name>", "arguments": {<arguments>}}].'
    )
    lines.append(
        "Call a function now." if forced else "If no function is needed, answer in plain text."
    )
    return "\n".join(lines)


def plan_tools(request: ChatRequest) -> ToolPlan | None:
    """The tool plan for *request* (``None``: no tools, or ``tool_choice="none"``)."""
    if not request.tools:
        if request.tool_choice not in (None, "none", "auto"):
            raise InvalidRequestError("tool_choice needs tools", param="tool_choice")
        return None
    functions = _functions(request)
    mode, allowed = _chosen(request, [f["name"] for f in functions])
    if mode == "none":
        return None
    # A named tool_choice asks for that one call, as OpenAI answers it.
    parallel = request.parallel_tool_calls is not False and isinstance(
        request.tool_choice, str | None
    )
    offered = [f for f in functions if f["name"] in allowed]
    forced = mode == "required"
    return ToolPlan(
        names=tuple(allowed),
        instructions=_instructions(offered, forced, parallel),
        grammar=_grammar(offered, parallel) if forced else None,
        parallel=parallel,
    )


def parse_calls(text: str, plan: ToolPlan) -> list[LocalToolCall] | None:
    """The calls in *text* if it is an answer in the call format, else ``None`` (plain text)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data or (len(data) > 1 and not plan.parallel):
        return None
    calls: list[LocalToolCall] = []
    for item in data:
        if not isinstance(item, dict) or item.get("name") not in plan.names:
            return None
        arguments = item.get("arguments", {})
        calls.append(
            LocalToolCall(
                id=f"call_{uuid.uuid4().hex[:24]}",
                name=str(item["name"]),
                arguments=arguments if isinstance(arguments, str) else json.dumps(arguments),
            )
        )
    return calls
