"""Structured output: ``parse()``, ``response_format=MyModel``, and checking answers against it.

The strict JSON schema is the one openai-python builds: the public helper
``openai.pydantic_function_tool(Model)`` returns it as the function's ``parameters`` (the SDK's
``to_strict_json_schema``: every property required, ``additionalProperties: false``, ``$ref``
expanded where OpenAI needs it). The openai package is imported only when a model class is
used, never at ``import genrouter``.

Checking happens inside the attempt, so a wrong answer is a
:class:`~genrouter.errors.StructuredOutputError` that routing treats like a model's refusal:
the next candidate gets the request. :class:`CheckedProvider` wraps each provider of one
``parse()`` call for that; it adds one validation of the answer and nothing else.

How each provider kind gets the schema (the translation lives with the provider):

* OpenAI and OpenAI-compatible servers: ``response_format`` as OpenAI defines it
  (``json_schema`` with ``strict: true``).
* DashScope: the same ``json_schema`` for the models its docs list; a ``json_object`` request
  gets the word "JSON" into the messages, which DashScope requires (see
  :mod:`genrouter.providers.dashscope`).
* Local llama.cpp models: a grammar compiled from the schema, so the output cannot be anything
  else (see :mod:`genrouter.providers.local`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from genrouter.errors import ContentFilteredError, InvalidRequestError, StructuredOutputError
from genrouter.providers.base import Provider, ProviderCall
from genrouter.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionMessageToolCall,
    Choice,
    Function,
)

if TYPE_CHECKING:
    from genrouter.catalog import ModelSpec
    from genrouter.routing.executor import RuntimeEnv

__all__ = [
    "CheckedProvider",
    "OutputSpec",
    "ParsedChatCompletion",
    "ParsedChatCompletionMessage",
    "ParsedChoice",
    "ParsedFunction",
    "ParsedFunctionToolCall",
    "SchemaCache",
    "is_model_class",
    "output_spec",
    "response_format_param",
]

ContentT = TypeVar("ContentT")


class ParsedFunction(Function):
    """A called function; ``parsed_arguments`` is set for strict and pydantic tools."""

    parsed_arguments: object = None


class ParsedFunctionToolCall(ChatCompletionMessageToolCall):
    function: ParsedFunction


class ParsedChatCompletionMessage(ChatCompletionMessage, Generic[ContentT]):
    """The assistant's answer with ``parsed`` (an instance of the ``response_format`` model,
    or ``None`` when the model refused: then ``refusal`` says why)."""

    parsed: ContentT | None = None
    tool_calls: list[ParsedFunctionToolCall] | None = None  # type: ignore[assignment]


class ParsedChoice(Choice, Generic[ContentT]):
    message: ParsedChatCompletionMessage[ContentT]


class ParsedChatCompletion(ChatCompletion, Generic[ContentT]):
    """What ``parse()`` returns: openai-python's ``ParsedChatCompletion``, plus ``route``."""

    choices: list[ParsedChoice[ContentT]]  # type: ignore[assignment]


def is_model_class(value: object) -> bool:
    """Whether *value* is a pydantic model class (what ``response_format=`` may name)."""
    return isinstance(value, type) and issubclass(value, BaseModel)


def _strict_schema(model: type[BaseModel], name: str) -> dict[str, Any]:
    try:
        import openai
    except ImportError as exc:  # a core dependency; only a broken install gets here
        raise InvalidRequestError(
            "response_format=<model class> needs the openai package: pip install openai",
            param="response_format",
        ) from exc
    tool = openai.pydantic_function_tool(model, name=name)
    parameters = tool["function"].get("parameters")
    return dict(parameters or {})


SchemaCache = dict[type[BaseModel], dict[str, Any]]


def response_format_param(
    model: type[BaseModel], cache: SchemaCache | None = None
) -> dict[str, Any]:
    """OpenAI's strict ``json_schema`` response format for *model* (as openai-python builds it).

    Building the schema costs milliseconds; a client passes its own *cache* (state lives on
    the client), and the result is shared, so callers copy before changing it.
    """
    known = cache.get(model) if cache is not None else None
    if known is not None:
        return dict(known)
    name = model.__name__
    param = {
        "type": "json_schema",
        "json_schema": {"schema": _strict_schema(model, name), "name": name, "strict": True},
    }
    if cache is not None:
        cache[model] = param
    return dict(param)


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """What one ``parse()`` call expects back: a model class for the content (or none) and
    the caller's tools (pydantic tools and ``strict`` ones get ``parsed_arguments``)."""

    model: type[BaseModel] | None
    wire_format: Mapping[str, Any] | None
    tool_models: Mapping[str, type[BaseModel] | None] = field(default_factory=dict)

    def check(self, completion: ChatCompletion, spec: ModelSpec) -> ParsedChatCompletion[Any]:
        """*completion* (from *spec*) with ``parsed`` filled in; raises if it does not match."""
        choices = [self._choice(choice, spec) for choice in completion.choices]
        data = {**_fields(completion), "choices": choices}
        parsed: ParsedChatCompletion[Any] = ParsedChatCompletion.model_construct(**data)
        return parsed

    def _choice(self, choice: Choice, spec: ModelSpec) -> ParsedChoice[Any]:
        message = choice.message
        where: dict[str, Any] = {"provider": spec.provider, "model": spec.model}
        if choice.finish_reason == "content_filter":
            raise ContentFilteredError("the content filter stopped the answer", **where)
        parsed: object = None
        if self.model is not None and not message.refusal and not message.tool_calls:
            parsed = self.parse_content(message.content, choice.finish_reason, where)
        tool_calls = None
        if message.tool_calls:
            tool_calls = [self._tool_call(tc, where) for tc in message.tool_calls]
        parsed_message = ParsedChatCompletionMessage[Any].model_construct(
            **{**_fields(message), "parsed": parsed, "tool_calls": tool_calls}
        )
        return ParsedChoice[Any].model_construct(**{**_fields(choice), "message": parsed_message})

    def parse_content(self, content: str | None, finish_reason: str | None, where: Any) -> object:
        """The content as an instance of ``model``; raises :class:`StructuredOutputError`."""
        assert self.model is not None
        name = self.model.__name__
        if not content:
            raise StructuredOutputError(f"the answer is empty, not a {name}", **where)
        if finish_reason == "length":
            raise StructuredOutputError(
                f"the answer was cut off by the output limit before the {name} was complete",
                content=content,
                **where,
            )
        try:
            return self.model.model_validate_json(content)
        except ValidationError as exc:
            raise StructuredOutputError(
                f"the answer does not match {name}: {_first_error(exc)}", content=content, **where
            ) from exc

    def _tool_call(self, call: ChatCompletionMessageToolCall, where: Any) -> ParsedFunctionToolCall:
        name = call.function.name
        parsed: object = None
        if name in self.tool_models:
            model = self.tool_models[name]
            arguments = call.function.arguments
            try:
                parsed = model.model_validate_json(arguments) if model else json.loads(arguments)
            except (ValidationError, ValueError) as exc:
                detail = _first_error(exc) if isinstance(exc, ValidationError) else str(exc)
                raise StructuredOutputError(
                    f"arguments of the strict tool {name!r} are invalid: {detail}",
                    content=arguments,
                    **where,
                ) from exc
        function = ParsedFunction.model_construct(
            **{**_fields(call.function), "parsed_arguments": parsed}
        )
        return ParsedFunctionToolCall.model_construct(**{**_fields(call), "function": function})

    def checking(self, env: RuntimeEnv) -> RuntimeEnv:
        """*env* with every provider wrapped so that its answers are checked."""
        inner = env.provider_for
        return replace(env, provider_for=lambda spec: CheckedProvider(inner(spec), self.check))


def _fields(model: BaseModel) -> dict[str, Any]:
    """A model's fields and extras as they are (no copy, no dump)."""
    data = {name: getattr(model, name) for name in type(model).model_fields}
    data.update(model.__pydantic_extra__ or {})
    return data


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in error["loc"])
    return f"{loc}: {error['msg']}" if loc else str(error["msg"])


def _tool_models(tools: object) -> dict[str, type[BaseModel] | None]:
    """Tools whose arguments get parsed: pydantic tools (their model) and strict ones (JSON)."""
    found: dict[str, type[BaseModel] | None] = {}
    if not isinstance(tools, Sequence):
        return found
    for tool in tools:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            continue
        model = getattr(function, "model", None)  # openai.pydantic_function_tool's wrapper
        if is_model_class(model):
            found[function["name"]] = model
        elif function.get("strict") is True:
            found[function["name"]] = None
    return found


def output_spec(
    response_format: object, tools: object = None, cache: SchemaCache | None = None
) -> OutputSpec:
    """Validate ``parse()``'s *response_format* (a model class, a format dict or ``None``)."""
    if response_format is None:
        return OutputSpec(None, None, _tool_models(tools))
    if is_model_class(response_format):
        assert isinstance(response_format, type)
        return OutputSpec(
            response_format, response_format_param(response_format, cache), _tool_models(tools)
        )
    if isinstance(response_format, Mapping):
        return OutputSpec(None, response_format, _tool_models(tools))
    raise InvalidRequestError(
        f"expected a pydantic model class or a response_format dict, not {response_format!r}",
        param="response_format",
    )


class CheckedProvider:
    """A provider whose complete answers must pass *check*; everything else is the inner one's.

    It is made per call and never closed: the client owns (and closes) the inner provider.
    """

    def __init__(
        self, inner: Provider, check: Callable[[ChatCompletion, ModelSpec], ChatCompletion]
    ) -> None:
        self._inner = inner
        self._check = check

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def is_remote(self) -> bool:
        return self._inner.is_remote

    def has_credentials(self) -> bool:
        return self._inner.has_credentials()

    def __getattr__(self, name: str) -> Any:
        # base_url and the like, which the client reads to tell loopback from the internet.
        return getattr(self._inner, name)

    async def complete(self, call: ProviderCall) -> ChatCompletion:
        return self._check(await self._inner.complete(call), call.model)

    def stream(self, call: ProviderCall) -> AsyncIterator[ChatCompletionChunk]:
        return self._inner.stream(call)

    async def aclose(self) -> None:
        return None
