"""Request messages in OpenAI's chat format, validated at the door.

Plain dicts are accepted everywhere a message is; :func:`genrouter.request.build_request`
validates them into these models or raises :class:`~genrouter.errors.InvalidRequestError`
naming the bad field.

Images are ``{"type": "image_url", "image_url": {"url": ...}}`` where the URL may be http(s),
a ``data:`` URI, a ``file://`` URL or a plain local path; local files are read and sent as data
URIs by :mod:`genrouter.media`. Video (DashScope's Qwen-VL) is ``{"type": "video_url",
"video_url": {"url": ...}}`` for a video file or ``{"type": "video", "video": [frame, ...]}``
for a list of frame images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "AssistantMessage",
    "ContentPart",
    "DeveloperMessage",
    "ImagePart",
    "ImageURL",
    "Message",
    "RefusalPart",
    "SystemMessage",
    "TextPart",
    "ToolMessage",
    "UserMessage",
    "VideoFramesPart",
    "VideoPart",
    "VideoURL",
    "first_validation_error",
    "message_input",
    "message_text",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextPart(_Strict):
    """A piece of text inside a message's content list."""

    type: Literal["text"] = "text"
    text: str


class ImageURL(_Strict):
    """Where an image comes from: http(s) URL, ``data:`` URI, ``file://`` URL or local path."""

    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Strict):
    """An image inside a user message."""

    type: Literal["image_url"] = "image_url"
    image_url: ImageURL


class VideoURL(_Strict):
    """A video file by URL (or local path)."""

    url: str = Field(min_length=1)


class VideoPart(_Strict):
    """A video file inside a user message (Qwen-VL)."""

    type: Literal["video_url"] = "video_url"
    video_url: VideoURL


class VideoFramesPart(_Strict):
    """A video given as its frames, each an image URL, data URI or local path (Qwen-VL)."""

    type: Literal["video"] = "video"
    video: list[str] = Field(min_length=1)


ContentPart = Annotated[
    TextPart | ImagePart | VideoPart | VideoFramesPart, Field(discriminator="type")
]


class RefusalPart(_Strict):
    """A refusal inside an assistant message's content list (as OpenAI returns it)."""

    type: Literal["refusal"] = "refusal"
    refusal: str


AssistantPart = Annotated[TextPart | RefusalPart, Field(discriminator="type")]


class FunctionCall(_Strict):
    name: str
    arguments: str
    # What ``parse()`` adds to a tool call it checked (genrouter's and openai-python's
    # ``ParsedFunction``): accepted so that a parsed answer round-trips, never sent.
    parsed_arguments: Any = Field(default=None, exclude=True)


class ToolCallParam(_Strict):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall
    # A streamed tool call's position; accepted so that streamed answers round-trip, never sent.
    index: int | None = None


class AudioRef(BaseModel):
    """An earlier audio answer, referred to by id (OpenAI accepts only the id back)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str


class SystemMessage(_Strict):
    role: Literal["system"] = "system"
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(_Strict):
    role: Literal["developer"] = "developer"
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(_Strict):
    role: Literal["user"] = "user"
    content: str | list[ContentPart]
    name: str | None = None


class AssistantMessage(_Strict):
    """An earlier answer in the history; takes what OpenAI returns (``refusal``, ``audio``,
    ``annotations``, ``function_call``) so that ``response.choices[0].message`` round-trips."""

    role: Literal["assistant"] = "assistant"
    content: str | list[AssistantPart] | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallParam] | None = None
    name: str | None = None
    refusal: str | None = None
    audio: AudioRef | None = None
    annotations: list[dict[str, Any]] | None = None
    function_call: FunctionCall | None = None
    # DashScope / DeepSeek style: continue this assistant text rather than start a new turn.
    partial: bool | None = None
    # ``parse()``'s instance of the response model (genrouter's and openai-python's
    # ``ParsedChatCompletionMessage``): accepted so that a parsed answer round-trips; it is the
    # content again, so no vendor gets it (OpenAI answers 400 to unknown message fields).
    parsed: Any = Field(default=None, exclude=True)


class ToolMessage(_Strict):
    role: Literal["tool"] = "tool"
    content: str | list[TextPart]
    tool_call_id: str


Message = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage,
    Field(discriminator="role"),
]

# Tags pydantic puts in error locations for tagged unions (after a list index) and the labels
# of plain union branches; neither is a field the caller wrote.
_UNION_TAGS = frozenset(
    {
        "system",
        "developer",
        "user",
        "assistant",
        "tool",
        "text",
        "refusal",
        "image_url",
        "video_url",
        "video",
    }
)
_ASSISTANT_FIELDS = frozenset(AssistantMessage.model_fields)


def message_input(message: object) -> object:
    """One caller-given message as something :data:`Message` validates.

    genrouter's own messages pass as they are. Other pydantic objects (a response's
    ``choices[0].message``, an openai SDK ``ChatCompletionMessage``) become dicts: ``None``
    fields and fields that only responses carry are left out, since they are output of a
    vendor, not the caller's typing. Dicts (and openai's param TypedDicts) pass unchanged and
    are validated strictly.
    """
    if isinstance(message, BaseModel) and not isinstance(message, _Strict):
        # warnings=False: openai-python's parse() types ``parsed`` loosely, and dumping its
        # message warns about that; the caller did nothing wrong.
        data = message.model_dump(exclude_none=True, warnings=False)
        if data.get("role") == "assistant":
            data = {k: v for k, v in data.items() if k in _ASSISTANT_FIELDS}
        return data
    return message


_BRANCH_LABELS = frozenset({"str", "int", "float", "bool", "none"})


def first_validation_error(exc: ValidationError, prefix: str) -> tuple[str, str]:
    """Return ``(location, message)`` of the first error in *exc*, location rooted at *prefix*.

    The location reads as the caller wrote the data: ``messages[1].content``, without the
    union tags and branch names pydantic adds.
    """
    errors = exc.errors(include_url=False)
    # Within a union every branch reports; the deepest location is the branch the caller meant.
    first_loc = errors[0]["loc"][:1]
    err = max((e for e in errors if e["loc"][:1] == first_loc), key=lambda e: len(e["loc"]))
    parts: list[str] = []
    previous: object = None
    for item in err["loc"]:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif not (
            (isinstance(previous, int) and item in _UNION_TAGS)
            or item in _BRANCH_LABELS
            or "[" in item
        ):
            parts.append(f".{item}")
        previous = item
    message = err["msg"].removeprefix("Value error, ")
    return prefix + "".join(parts), message


def message_text(content: str | Sequence[BaseModel] | None) -> str:
    """The text of a message's content, joining text parts and skipping media."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.text for p in content if isinstance(p, TextPart))
