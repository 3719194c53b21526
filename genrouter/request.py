"""The validated request that flows from the client through routing to a provider."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from genrouter.errors import InvalidRequestError
from genrouter.messages import (
    AssistantMessage,
    ImagePart,
    Message,
    UserMessage,
    VideoFramesPart,
    VideoPart,
    first_validation_error,
    message_input,
)
from genrouter.validation import check_params, check_request

__all__ = ["OPENAI_ONLY_PARAMS", "OPENAI_PARAMS", "ChatRequest", "Needs", "build_request"]

# Generation parameters that OpenAI-compatible servers commonly take; they travel as they are
# (when set) to every OpenAI-style API.
OPENAI_PARAMS: tuple[str, ...] = (
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "seed",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
    "user",
)

# openai-python parameters of OpenAI's own platform (stored completions, service tiers, audio,
# predicted outputs...). Sent to providers whose dialect accepts them; elsewhere dropped and
# named in ``RouteInfo.dropped_params``. ``stream_options`` is handled on its own.
OPENAI_ONLY_PARAMS: tuple[str, ...] = (
    "audio",
    "function_call",
    "functions",
    "metadata",
    "modalities",
    "moderation",
    "prediction",
    "prompt_cache_key",
    "prompt_cache_options",
    "prompt_cache_retention",
    "safety_identifier",
    "service_tier",
    "store",
    "verbosity",
    "web_search_options",
)

_WIRE_SET = frozenset(OPENAI_PARAMS + OPENAI_ONLY_PARAMS)
# openai-python's "not given" sentinels (``openai.NOT_GIVEN``, ``openai.omit``), by class name
# so that checking for them imports nothing.
_SENTINELS = frozenset({"NotGiven", "Omit"})


@dataclass(frozen=True, slots=True)
class Needs:
    """What a request requires of a model; routing filters candidates by it."""

    modalities: frozenset[str] = frozenset({"text"})
    tools: bool = False
    json_schema: bool = False
    json_object: bool = False


_TEXT_ONLY = Needs()  # what most requests need: one frozen value, shared
_JSON_FORMATS = ("json_schema", "json_object")


class ChatRequest(BaseModel):
    """A chat request after validation. Immutable: routing derives new ones with ``model_copy``.

    ``metadata`` is OpenAI's (stored completions), sent where the provider takes it.
    ``route_metadata`` is genrouter's routing metadata (rules match on it); it is never sent to
    a provider. ``extra_headers`` / ``extra_query`` go on the HTTP request.
    ``provider_options`` holds vendor-specific parameters per provider kind (e.g.
    ``{"dashscope": {"enable_search": True}}``), applied only when that provider is used.
    ``extra_body`` is merged into the body sent to whichever provider answers.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    model: str = Field(min_length=1)
    messages: list[Message]
    stream: bool = False

    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    logit_bias: dict[str, int] | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = (
        None
    )
    user: str | None = None

    audio: dict[str, Any] | None = None
    function_call: str | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    modalities: list[Literal["text", "audio"]] | None = None
    moderation: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    prompt_cache_key: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    prompt_cache_retention: str | None = None
    safety_identifier: str | None = None
    service_tier: str | None = None
    store: bool | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    web_search_options: dict[str, Any] | None = None
    stream_options: dict[str, Any] | None = None

    route_metadata: dict[str, str] = Field(default_factory=dict)
    provider_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    extra_body: dict[str, Any] | None = None
    extra_headers: dict[str, str] | None = None
    extra_query: dict[str, Any] | None = None
    timeout: float | None = Field(default=None, gt=0)
    first_token_timeout: float | None = Field(default=None, gt=0)
    resume: bool = False

    @property
    def output_limit(self) -> int | None:
        """The caller's cap on output tokens, whichever name it was given under."""
        return self.max_completion_tokens or self.max_tokens

    @property
    def include_usage(self) -> bool:
        """Whether the caller asked for the usage-only chunk at the end of a stream."""
        return bool(self.stream_options and self.stream_options.get("include_usage"))

    def wire_params(self) -> dict[str, Any]:
        """The OpenAI parameters the caller set (``stream_options`` aside), by their names."""
        # Only what the caller set (a few names), not all of OpenAI's parameters.
        params: dict[str, Any] = {}
        for name in _WIRE_SET.intersection(self.model_fields_set):
            value = getattr(self, name)
            if value is not None:
                params[name] = value
        return params

    def needs(self) -> Needs:
        """What this request requires of a model (input modalities, tools, JSON output)."""
        # Routing, the planner and the provider all ask; the answer depends only on fields
        # that never change after validation, so it is computed once and kept in the
        # instance dict (as a cached_property would, without its lock and descriptor).
        found: Needs | None = self.__dict__.get("_needs")
        if found is None:
            found = self.__dict__["_needs"] = self._compute_needs()
        return found

    def _compute_needs(self) -> Needs:
        modalities = {"text"}
        for message in self.messages:
            if isinstance(message, UserMessage) and not isinstance(message.content, str):
                for part in message.content:
                    if isinstance(part, ImagePart):
                        modalities.add("image")
                    elif isinstance(part, VideoPart | VideoFramesPart):
                        modalities.add("video")
        fmt = (self.response_format or {}).get("type")
        needs = (
            Needs(
                modalities=frozenset(modalities),
                tools=bool(self.tools),
                json_schema=fmt == "json_schema",
                json_object=fmt == "json_object",
            )
            if len(modalities) > 1 or self.tools or fmt in _JSON_FORMATS
            else _TEXT_ONLY
        )
        return needs

    def continued(self, partial_text: str) -> ChatRequest:
        """This request asking to continue *partial_text* (an assistant prefix), for resume.

        If the caller's last message already was a partial assistant prefix, the new text
        extends it: the model continues one answer, not two.
        """
        messages = list(self.messages)
        last = messages[-1] if messages else None
        if isinstance(last, AssistantMessage) and last.partial and isinstance(last.content, str):
            messages[-1] = AssistantMessage(content=last.content + partial_text, partial=True)
        else:
            messages.append(AssistantMessage(content=partial_text, partial=True))
        return self.model_copy(update={"messages": messages})


def build_request(params: Mapping[str, Any]) -> ChatRequest:
    """Validate keyword arguments of ``create()`` into a :class:`ChatRequest`.

    Raises :class:`InvalidRequestError` naming the first bad parameter.
    """
    check_params(params)  # the raw arguments pydantic would misreport (genrouter.validation)
    data = dict(params)
    if "openai" in sys.modules:  # only then can its sentinels be here
        for key, value in params.items():
            if type(value).__name__ in _SENTINELS:
                del data[key]
    messages = data.get("messages")
    if type(messages) is not list and (  # a list (the usual case): skip the ABC check
        messages is None or isinstance(messages, str | bytes | Mapping)
    ):
        raise InvalidRequestError("expected a list of messages", param="messages")
    data["messages"] = messages = [m if type(m) is dict else message_input(m) for m in messages]
    if not messages:
        raise InvalidRequestError("at least one message is required", param="messages")
    timeout = data.get("timeout")
    if timeout is not None and not isinstance(timeout, int | float):
        # An httpx2.Timeout as the openai SDK takes it: its read timeout bounds the request.
        data["timeout"] = getattr(timeout, "read", None)
    try:
        request = ChatRequest.model_validate(data)
    except ValidationError as exc:
        loc, msg = first_validation_error(exc, "")
        raise InvalidRequestError(msg, param=loc.lstrip(".")) from None
    return check_request(request)  # the one door: every field, before any I/O
