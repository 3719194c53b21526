"""Alibaba Cloud DashScope (Model Studio): Qwen2.5-Max and Qwen2.5-VL over the OpenAI wire.

:class:`DashScopeProvider` speaks DashScope's OpenAI-compatible endpoint
(``{base}/compatible-mode/v1/chat/completions``) through the shared HTTP client, so it needs
no ``dashscope`` package (that optional extra only sharpens token counts, see
:mod:`genrouter.tokens`).

Regions. DashScope keys belong to one region and fail elsewhere with ``InvalidApiKey``:

=========  ====================================================  =====================
region     base URL                                              where
=========  ====================================================  =====================
``intl``   ``https://dashscope-intl.aliyuncs.com/compatible-mode/v1``  Singapore (default)
``us``     ``https://dashscope-us.aliyuncs.com/compatible-mode/v1``    US (Virginia)
``cn``     ``https://dashscope.aliyuncs.com/compatible-mode/v1``       China (Beijing)
=========  ====================================================  =====================

``base_url`` in the configuration overrides the table (a workspace domain, a proxy). The key
comes from ``DASHSCOPE_API_KEY`` unless ``api_key_env`` / ``api_key = "${VAR}"`` names
another variable, so two providers can serve two regions with two keys.

Vendor parameters travel in ``request.provider_options["dashscope"]``, validated by
:class:`DashScopeOptions` (an unknown key is an :class:`~genrouter.errors.InvalidRequestError`
naming it), and are sent at the top level of the JSON body, as the openai SDK's
``extra_body`` would send them.

Media. Images may be http(s) URLs (sent untouched), ``data:`` URIs, or local paths and
``file://`` URLs, which are read and sent as data URIs; DashScope refuses a base64 image over
10 MB, so a local file over :data:`MAX_IMAGE_BYTES` raw bytes is refused before anything is
sent. A video is a list of frames (``{"type": "video", "video": [...]}``, each frame resolved
like an image) or a video URL (``{"type": "video_url", ...}``; local video files are refused).

Errors are mapped by :func:`map_dashscope_error`, a pure function that reads both body shapes
DashScope sends: compatible mode's ``{"error": {"code", "message", "type"}, "request_id"}`` and
the native ``{"code", "message", "request_id"}`` (also seen inside streams and as
``"<400> InternalError.Algo.DataInspectionFailed: ..."`` messages).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_json

from genrouter.errors import (
    AuthenticationError,
    BadRequestError,
    BillingError,
    ContentFilteredError,
    ContextWindowExceededError,
    InvalidRequestError,
    MediaError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServerError,
    UnsupportedInputError,
    redact,
)
from genrouter.media import is_local_source, is_oss_url, resolve_image_source
from genrouter.messages import first_validation_error
from genrouter.providers._dialect import DASHSCOPE, WireDialect
from genrouter.providers._errors_http import (
    classify,
    error_fields,
    parse_retry_after,
    should_retry_header,
    status_in_payload,
)
from genrouter.providers._tool_choice import forced_tool_choice
from genrouter.providers.openai_compat import OpenAICompatibleProvider

if TYPE_CHECKING:
    import httpx2

    from genrouter.config import ProviderConfig
    from genrouter.providers.base import ProviderCall

__all__ = [
    "DEFAULT_REGION",
    "MAX_IMAGE_BYTES",
    "OSS_RESOLVE_HEADER",
    "REGION_BASE_URLS",
    "DashScopeOptions",
    "DashScopeProvider",
    "SearchOptions",
    "dashscope_base_url",
    "map_dashscope_error",
]

Region = Literal["intl", "us", "cn"]

DEFAULT_REGION: Final[Region] = "intl"
REGION_BASE_URLS: Final[Mapping[str, str]] = {
    "intl": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
    "us": "https://dashscope-us.aliyuncs.com/compatible-mode/v1",
    "cn": "https://dashscope.aliyuncs.com/compatible-mode/v1",
}
_REGION_NAMES: Final[Mapping[str, str]] = {
    "intl": "Singapore",
    "us": "US (Virginia)",
    "cn": "China (Beijing)",
}

#: DashScope refuses a base64-encoded image over 10 MB: that is 7.5 MB of raw image bytes.
MAX_IMAGE_BYTES: Final = 10 * 1024 * 1024 * 3 // 4
_MAX_ENCODED_IMAGE: Final = 10 * 1024 * 1024
#: The header that lets DashScope read ``oss://`` temporary uploads (Alibaba Cloud Model
#: Studio, "Upload local files to get temporary URLs", alibabacloud.com/help/en/model-studio/
#: get-temporary-file-url, seen 2026-12-01: "For HTTP calls, add the header
#: X-DashScope-OssResourceResolve: enable"). Temporary uploads exist in the Beijing region only.
OSS_RESOLVE_HEADER: Final = "X-DashScope-OssResourceResolve"


def dashscope_base_url(region: str | None, base_url: str | None = None) -> str:
    """The compatible-mode API root for *region* (``intl`` when ``None``), unless *base_url*."""
    if base_url:
        return base_url.rstrip("/")
    return REGION_BASE_URLS[region or DEFAULT_REGION]


# --- vendor options -----------------------------------------------------------------------


class SearchOptions(BaseModel):
    """``search_options`` for ``enable_search`` (web search by DashScope)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    forced_search: bool | None = None
    search_strategy: Literal["turbo", "max", "standard", "pro"] | None = None
    enable_source: bool | None = None
    enable_citation: bool | None = None
    citation_format: str | None = None
    enable_search_extension: bool | None = None
    prepend_search_result: bool | None = None


class DashScopeOptions(BaseModel):
    """DashScope parameters accepted in compatible mode, from
    ``request.provider_options["dashscope"]``.

    ``incremental_output`` is not here: compatible-mode streams are always incremental.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enable_search: bool | None = None
    search_options: SearchOptions | None = None
    enable_thinking: bool | None = None
    thinking_budget: int | None = Field(default=None, gt=0)
    top_k: int | None = Field(default=None, ge=0)
    repetition_penalty: float | None = Field(default=None, gt=0)
    vl_high_resolution_images: bool | None = None
    translation_options: dict[str, Any] | None = None

    def wire(self) -> dict[str, Any]:
        """The options as top-level body fields (unset ones left out)."""
        return self.model_dump(exclude_none=True)


def parse_options(raw: Mapping[str, Any] | None) -> DashScopeOptions:
    """Validate ``provider_options["dashscope"]``; raises :class:`InvalidRequestError`."""
    try:
        return DashScopeOptions.model_validate(dict(raw or {}))
    except ValidationError as exc:
        loc, msg = first_validation_error(exc, "provider_options.dashscope")
        known = ", ".join(DashScopeOptions.model_fields)
        raise InvalidRequestError(f"{msg} (DashScope options: {known})", param=loc) from None


# --- errors (pure) ------------------------------------------------------------------------

# "<400> InternalError.Algo.DataInspectionFailed: Input text data may contain ..."
_BRACKETED = re.compile(
    r"^\s*<(?P<status>\d{3})>\s*(?P<code>[A-Za-z][\w.]*):\s*(?P<message>.*)$", re.S
)
# DashScope's own wording for an over-long prompt, besides the generic phrases.
_CONTEXT_PHRASES: Final = (
    "range of input length",
    "input length",
    "maximum context length",
    "context length",
    "too long",
    "exceeds the maximum",
)


def _normal(code: str | None) -> str:
    return re.sub(r"[^a-z0-9]", "", code.lower()) if code else ""


# DashScope's error table. Codes are matched normalised (lower case, letters and digits only:
# "Throttling.RateQuota" -> "throttlingratequota") against the fragments below, the code and
# the error type joined. Specific codes win over the HTTP status; generic ones ("the request
# is invalid", "internal error") decide only when the status does not (in a stream, or a 400).
_DASHSCOPE_SPECIFIC: Final[tuple[tuple[str, type[ProviderError]], ...]] = (
    ("datainspectionfailed", ContentFilteredError),
    ("inappropriatecontent", ContentFilteredError),
    ("invalidapikey", AuthenticationError),
    ("arrearage", BillingError),
    # Throttling.AllocationQuota arrives in compatible mode as "insufficient_quota", which
    # elsewhere means an unpaid bill: on DashScope it is a per-minute quota that recovers.
    ("throttling", RateLimitError),
    ("limitrequests", RateLimitError),
    ("insufficientquota", RateLimitError),
    ("modelnotfound", NotFoundError),
    ("modelnotexist", NotFoundError),
    ("accessdenied", PermissionDeniedError),
)
_DASHSCOPE_GENERIC: Final[tuple[tuple[str, type[ProviderError]], ...]] = (
    ("invalidparameter", BadRequestError),
    ("invalidrequest", BadRequestError),
    ("internalerror", ServerError),
    ("serviceunavailable", ServerError),
    ("requesttimeout", ServerError),
)


def _dashscope_class(status: int | None, codes: str, message: str) -> type[ProviderError]:
    """The error class from DashScope codes (normalised, joined), HTTP status and message."""
    for fragment, cls in _DASHSCOPE_SPECIFIC:
        if fragment in codes:
            return cls
    if status in (None, 400):
        for fragment, cls in _DASHSCOPE_GENERIC:
            if fragment in codes:
                if cls is BadRequestError and any(p in message.lower() for p in _CONTEXT_PHRASES):
                    return ContextWindowExceededError
                return cls
    return classify(status, None, message)


def map_dashscope_error(
    status: int | None,
    payload: Any,
    headers: Mapping[str, str] | None = None,
    *,
    provider: str | None = None,
    model: str | None = None,
    region: str | None = None,
    base_url: str | None = None,
    secrets: Iterable[str | None] = (),
) -> ProviderError:
    """The typed error for a DashScope error body (decoded JSON) or in-stream error event.

    *status* is the HTTP status, or ``None`` for an error inside a stream. *headers* supply
    ``Retry-After`` (looked up case-insensitively or in lower case). *region* and *base_url*
    go into the message of an ``InvalidApiKey``, whose usual cause is a key from another
    region. Every message passes through :func:`~genrouter.errors.redact` with *secrets*.
    """
    headers = headers or {}
    fields = error_fields(payload) if payload is not None else error_fields({})
    message = fields.message or (f"HTTP {status}" if status else "DashScope reported an error")
    code = fields.code
    bracketed = _BRACKETED.match(message)
    if bracketed:
        # The native SDK's "<status> Code: message" text, relayed inside another body.
        code = code or bracketed.group("code")
        message = bracketed.group("message") or message
        if status is None:
            status = int(bracketed.group("status"))
    if status is None and isinstance(payload, Mapping):
        status = status_in_payload(payload.get("error"), payload)
    codes = " ".join(filter(None, (_normal(code), _normal(fields.type))))
    cls = _dashscope_class(status, codes, message)
    message = redact(message.strip(), secrets)[:500]  # redact first: a cut key would not match
    if cls is AuthenticationError and "invalidapikey" in codes:
        message += _region_hint(region, base_url)
    where: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "status_code": status,
        "code": code,
        "request_id": fields.request_id or headers.get("x-request-id"),
    }
    return cls(
        message,
        retry_after=parse_retry_after(headers),
        should_retry=should_retry_header(headers),
        **where,
    )


def _region_hint(region: str | None, base_url: str | None) -> str:
    used = base_url or dashscope_base_url(region)
    if region:
        place = f"region {region!r} ({_REGION_NAMES.get(region, region)}, {used})"
    else:
        place = f"base URL {used}"
    return (
        f" — DashScope API keys work only in the region that issued them, and a key from "
        f"another region is a common cause of this error. This provider used {place}; set "
        f"'region' (intl, us, cn) or 'base_url' to match the key."
    )


# --- the provider -------------------------------------------------------------------------


class DashScopeProvider(OpenAICompatibleProvider):
    """Qwen models on Alibaba Cloud DashScope, through its OpenAI-compatible endpoint.

    ``config.region`` picks the endpoint (``intl`` by default), ``config.base_url`` overrides
    it. Assistant messages keep ``partial`` (DashScope's continuation mode).
    """

    kind: ClassVar[str] = "dashscope"
    default_base_url: ClassVar[str | None] = REGION_BASE_URLS[DEFAULT_REGION]
    default_key_env: ClassVar[str | None] = "DASHSCOPE_API_KEY"
    key_required: ClassVar[bool] = True
    dialect: ClassVar[WireDialect] = DASHSCOPE
    continuation: ClassVar[str] = "partial"

    def __init__(
        self,
        name: str,
        config: ProviderConfig,
        *,
        http: httpx2.AsyncClient,
        env: Mapping[str, str],
    ) -> None:
        # The base class reads base_url from the config; fill it from the region table.
        resolved = config.model_copy(
            update={"base_url": dashscope_base_url(config.region, config.base_url)}
        )
        super().__init__(name, resolved, http=http, env=env)
        self._region: str | None = None if config.base_url else (config.region or DEFAULT_REGION)

    @property
    def region(self) -> str | None:
        """The region whose endpoint this provider calls (``None`` for a custom base URL)."""
        return self._region

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self._name!r}, region={self._region!r}, "
            f"base_url={self._base_url!r})"
        )

    # -- request building (pure) --------------------------------------------------------

    def check_input(self, call: ProviderCall) -> None:
        """Refuse media the model cannot take, and data URIs over DashScope's size limit."""
        super().check_input(call)
        options = call.request.provider_options.get(self.kind)
        parse_options(options)  # fail before any file is read
        _check_tool_choice(call)
        if self._config.use_sdk and _has_oss_media(call):
            raise MediaError(
                "oss:// media needs the X-DashScope-OssResourceResolve header, which genrouter "
                "sets on its own HTTP path: set use_sdk = false for this provider",
                source=next(s for s in _media_sources(call) if is_oss_url(s)),
            )
        for url in _video_urls(call):
            if is_local_source(url) and not is_oss_url(url):
                raise MediaError(
                    f"video {url!r} is a local file; DashScope needs a video URL, or the "
                    'video as frames ({"type": "video", "video": [...]})',
                    source=url,
                )
        for source in _image_sources(call):
            if (
                source[:5].lower() == "data:"
                and len(source) - source.find(",") > _MAX_ENCODED_IMAGE
            ):
                raise MediaError(
                    f"a data URI image is {len(source)} characters; DashScope accepts base64 "
                    f"images up to {_MAX_ENCODED_IMAGE} bytes",
                    source=source[:40] + "...",
                )

    def build_body(self, call: ProviderCall, *, stream: bool) -> dict[str, Any]:
        """OpenAI's body plus validated DashScope options at the top level."""
        options = parse_options(call.request.provider_options.get(self.kind))
        body = super().build_body(call, stream=stream)
        for key in call.request.provider_options.get(self.kind, {}):
            body.pop(key, None)  # the base class copied them raw; send the validated form
        body.update(options.wire())
        if call.request.extra_body:
            body.update(call.request.extra_body)  # the caller's last word, as in the base
        _ensure_json_keyword(body)
        return body

    def resolve_media(self, messages: list[dict[str, Any]]) -> None:
        """Local images and frames become data URIs within DashScope's size limit."""
        for message in messages:
            content = message.get("content")
            if message.get("role") != "user" or not isinstance(content, list):
                continue
            for part in content:
                kind = part.get("type")
                if kind == "image_url":
                    image = part["image_url"]
                    image["url"] = _resolve(image["url"])
                elif kind == "video":
                    part["video"] = [_resolve(frame) for frame in part["video"]]

    def _request(self, body: dict[str, Any], key: str | None, call: ProviderCall) -> httpx2.Request:
        """The HTTP request, with ``X-DashScope-OssResourceResolve: enable`` when the call
        sends ``oss://`` media (DashScope reads temporary uploads only with it)."""
        request = super()._request(body, key, call)
        if _has_oss_media(call):
            request.headers[OSS_RESOLVE_HEADER] = "enable"
        return request

    # -- errors --------------------------------------------------------------------------

    def map_error(self, status: int, body: bytes, headers: httpx2.Headers) -> ProviderError:
        """DashScope's HTTP errors, by vendor code (see :func:`map_dashscope_error`)."""
        return map_dashscope_error(
            status,
            _decode(body),
            headers,
            provider=self._name,
            region=self._region,
            base_url=self._base_url,
            secrets=self._secrets(),
        )

    def is_error_payload(self, payload: Any) -> bool:
        """OpenAI's ``{"error": ...}`` shape, or DashScope's native ``{"code", "message"}``."""
        if not isinstance(payload, dict):
            return False
        native = "code" in payload and "message" in payload and "choices" not in payload
        return bool(payload.get("error")) or native

    def map_stream_error(self, payload: dict[str, Any]) -> ProviderError:
        """An error event inside a stream (e.g. ``data_inspection_failed`` on the output)."""
        return map_dashscope_error(
            None,
            payload,
            provider=self._name,
            region=self._region,
            base_url=self._base_url,
            secrets=self._secrets(),
        )


# tool_choice in compatible mode. Model Studio's function-calling guide lists "auto", "none",
# "required" and {"type": "function", "function": {"name": ...}} (quoted in spring-ai-alibaba's
# DashScope sample; help.aliyun.com/zh/model-studio/qwen-function-calling, stored copies read
# 2026-12-02). agentscope (Alibaba's agent framework, native API) still converts "required" to
# "auto" as "not supported by DashScope API" (agentscope#950, 2025-12-04), so genrouter sends
# "required" with one tool as that tool's named choice (see providers/_dialect.py); with
# several it goes as it is, unverified against a live endpoint. In thinking mode DashScope
# refuses both forced forms: "The tool_choice parameter does not support being set to required
# or object in thinking mode" (reported in agentscope-java#1877, 2026-06-23; a named choice
# with thinking on fails too, agentscope#1608, 2026-09-07).
_FORCED_IN_THINKING: Final = (
    "DashScope refuses tool_choice={choice!r} in thinking mode ({model} thinks{why}); use "
    'tool_choice="auto", or turn thinking off with provider_options={{"dashscope": '
    '{{"enable_thinking": False}}}}'
)


def _thinks(call: ProviderCall) -> tuple[bool, str]:
    """Whether *call* runs in thinking mode, and why: the caller's ``enable_thinking`` (in
    ``provider_options`` or ``extra_body``), else the catalog's ``reasoning`` mark (a model
    marked so is taken to think by default; unverified per model)."""
    request = call.request
    for source, where in (
        (request.extra_body or {}, "extra_body"),
        (request.provider_options.get("dashscope") or {}, "provider_options"),
    ):
        value = source.get("enable_thinking")
        if value is not None:
            return bool(value), f": enable_thinking=True in {where}"
    return call.model.reasoning, " by default (reasoning = true in its catalog entry)"


def _check_tool_choice(call: ProviderCall) -> None:
    """Refuse, before sending, a forced ``tool_choice`` that DashScope refuses in thinking mode.

    An :class:`UnsupportedInputError`: routing moves on to the route's next candidate.
    """
    if not forced_tool_choice(call.request):
        return
    thinks, why = _thinks(call)
    if thinks:
        raise UnsupportedInputError(
            _FORCED_IN_THINKING.format(
                choice=call.request.tool_choice, model=call.model.id, why=why
            ),
            param="tool_choice",
        )


# DashScope answers a json_object request whose messages never say "JSON" with a 400 ("'messages'
# must contain the word 'json' in some form"); json_schema needs no keyword. Seen in Model
# Studio's "Structured output" page, https://www.alibabacloud.com/help/en/model-studio/
# qwen-structured-output (last updated 2026-02-18, read 2026-12-01).
_JSON_HINT: Final = "Answer in JSON."


def _ensure_json_keyword(body: dict[str, Any]) -> None:
    """Add a one-line system hint to a ``json_object`` request that never mentions JSON."""
    fmt = body.get("response_format")
    messages = body.get("messages")
    if not isinstance(fmt, Mapping) or fmt.get("type") != "json_object":
        return
    if not isinstance(messages, list) or "json" in to_json(messages).decode().lower():
        return
    first = messages[0] if messages else None
    if (
        isinstance(first, dict)
        and first.get("role") == "system"
        and isinstance(first.get("content"), str)
    ):
        messages[0] = {**first, "content": f"{first['content']}\n\n{_JSON_HINT}"}
        return
    body["messages"] = [{"role": "system", "content": _JSON_HINT}, *messages]


def _resolve(source: str) -> str:
    return (
        resolve_image_source(source, max_bytes=MAX_IMAGE_BYTES)
        if is_local_source(source) and not is_oss_url(source)
        else source
    )


def _media_sources(call: ProviderCall) -> Iterable[str]:
    yield from _image_sources(call)
    yield from _video_urls(call)


def _has_oss_media(call: ProviderCall) -> bool:
    return any(is_oss_url(source) for source in _media_sources(call))


def _image_sources(call: ProviderCall) -> Iterable[str]:
    from genrouter.messages import ImagePart, UserMessage, VideoFramesPart

    for message in call.request.messages:
        if isinstance(message, UserMessage) and not isinstance(message.content, str):
            for part in message.content:
                if isinstance(part, ImagePart):
                    yield part.image_url.url
                elif isinstance(part, VideoFramesPart):
                    yield from part.video


def _video_urls(call: ProviderCall) -> Iterable[str]:
    from genrouter.messages import UserMessage, VideoPart

    for message in call.request.messages:
        if isinstance(message, UserMessage) and not isinstance(message.content, str):
            for part in message.content:
                if isinstance(part, VideoPart):
                    yield part.video_url.url


def _decode(body: bytes) -> Any:
    import json

    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {"message": body.decode("utf-8", "replace").strip() or None}
