"""Typed request parameters: what ``chat.completions.create`` takes, for type checkers.

These are ``TypedDict`` definitions only (validation happens in
:func:`genrouter.request.build_request`). They make mypy and pyright flag a misspelled keyword
or a malformed message dict in a caller's code, as the openai SDK's own types do. Messages may
be genrouter's :data:`MessageParam` dicts (OpenAI's shapes plus genrouter's video parts,
``reasoning_content`` and ``partial``), the openai SDK's ``ChatCompletionMessageParam``
TypedDicts, or response message objects (``resp.choices[0].message``, any pydantic model).

The openai SDK is imported here only by type checkers; at run time this module imports
nothing from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Required, TypeAlias, TypedDict

if TYPE_CHECKING:
    import httpx2
    from openai.types.chat import (
        ChatCompletionAudioParam,
        ChatCompletionMessageParam,
        ChatCompletionPredictionContentParam,
        ChatCompletionStreamOptionsParam,
        ChatCompletionToolChoiceOptionParam,
        ChatCompletionToolUnionParam,
    )
    from openai.types.chat.completion_create_params import (
        Function,
        FunctionCall,
        Moderation,
        PromptCacheOptions,
        ResponseFormat,
        WebSearchOptions,
    )
    from pydantic import BaseModel

__all__ = [
    "CompletionCreateParams",
    "MessageInput",
    "MessageParam",
]


class TextPartParam(TypedDict, total=False):
    type: Required[Literal["text"]]
    text: Required[str]


class RefusalPartParam(TypedDict, total=False):
    type: Required[Literal["refusal"]]
    refusal: Required[str]


class ImageURLParam(TypedDict, total=False):
    url: Required[str]
    detail: Literal["auto", "low", "high"]


class ImagePartParam(TypedDict, total=False):
    type: Required[Literal["image_url"]]
    image_url: Required[ImageURLParam]


class VideoURLParam(TypedDict, total=False):
    url: Required[str]


class VideoPartParam(TypedDict, total=False):
    type: Required[Literal["video_url"]]
    video_url: Required[VideoURLParam]


class VideoFramesPartParam(TypedDict, total=False):
    type: Required[Literal["video"]]
    video: Required[Sequence[str]]


UserPartParam: TypeAlias = TextPartParam | ImagePartParam | VideoPartParam | VideoFramesPartParam


class SystemMessageParam(TypedDict, total=False):
    role: Required[Literal["system"]]
    content: Required[str | Iterable[TextPartParam]]
    name: str


class DeveloperMessageParam(TypedDict, total=False):
    role: Required[Literal["developer"]]
    content: Required[str | Iterable[TextPartParam]]
    name: str


class UserMessageParam(TypedDict, total=False):
    role: Required[Literal["user"]]
    content: Required[str | Iterable[UserPartParam]]
    name: str


class FunctionCallParam(TypedDict):
    name: str
    arguments: str


class ToolCallParam(TypedDict, total=False):
    id: Required[str]
    type: Required[Literal["function"]]
    function: Required[FunctionCallParam]
    index: int


class AudioRefParam(TypedDict):
    id: str


class AssistantMessageParam(TypedDict, total=False):
    role: Required[Literal["assistant"]]
    content: str | Iterable[TextPartParam | RefusalPartParam] | None
    reasoning_content: str | None
    tool_calls: Iterable[ToolCallParam] | None
    name: str
    refusal: str | None
    audio: AudioRefParam | None
    annotations: Iterable[Mapping[str, Any]] | None
    function_call: FunctionCallParam | None
    partial: bool


class ToolMessageParam(TypedDict, total=False):
    role: Required[Literal["tool"]]
    content: Required[str | Iterable[TextPartParam]]
    tool_call_id: Required[str]


MessageParam: TypeAlias = (
    SystemMessageParam
    | DeveloperMessageParam
    | UserMessageParam
    | AssistantMessageParam
    | ToolMessageParam
)
"""One message as a dict: OpenAI's shapes plus genrouter's additions."""

if TYPE_CHECKING:
    MessageInput: TypeAlias = Iterable[MessageParam | ChatCompletionMessageParam | BaseModel]
    """What ``messages=`` takes: dicts, openai SDK param TypedDicts, or message objects."""
else:
    MessageInput: TypeAlias = Iterable[Any]


class CompletionCreateParams(TypedDict, total=False):
    """Every keyword of ``create()`` besides ``model``, ``messages`` and ``stream``.

    openai-python's parameters by their names (``tests/test_openai_dropin.py`` compares this
    list with the installed SDK's signature), then genrouter's own.
    """

    # -- openai-python's chat.completions.create ------------------------------------------
    audio: ChatCompletionAudioParam | None
    frequency_penalty: float | None
    function_call: FunctionCall
    functions: Iterable[Function]
    logit_bias: dict[str, int] | None
    logprobs: bool | None
    max_completion_tokens: int | None
    max_tokens: int | None
    metadata: dict[str, str] | None
    modalities: list[Literal["text", "audio"]] | None
    moderation: Moderation
    n: int | None
    parallel_tool_calls: bool
    prediction: ChatCompletionPredictionContentParam | None
    presence_penalty: float | None
    prompt_cache_key: str | None
    prompt_cache_options: PromptCacheOptions
    prompt_cache_retention: Literal["in_memory", "24h"] | None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None
    response_format: ResponseFormat | Mapping[str, Any] | type[BaseModel]
    safety_identifier: str | None
    seed: int | None
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast"] | None
    stop: str | Sequence[str] | None
    store: bool | None
    stream_options: ChatCompletionStreamOptionsParam | None
    temperature: float | None
    tool_choice: ChatCompletionToolChoiceOptionParam
    tools: Iterable[ChatCompletionToolUnionParam | Mapping[str, Any]]
    top_logprobs: int | None
    top_p: float | None
    user: str
    verbosity: Literal["low", "medium", "high"] | None
    web_search_options: WebSearchOptions
    extra_headers: Mapping[str, str] | None
    extra_query: Mapping[str, object] | None
    extra_body: Mapping[str, object] | None
    timeout: float | httpx2.Timeout | None

    # -- genrouter's own --------------------------------------------------------------------
    route_metadata: Mapping[str, str]
    """Routing metadata that ``[[rules]] when.metadata`` matches; never sent to a provider."""
    provider_options: Mapping[str, Mapping[str, Any]]
    """Vendor parameters per provider kind, e.g. ``{"dashscope": {"enable_search": True}}``."""
    first_token_timeout: float | None
    resume: bool
