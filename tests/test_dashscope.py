"""DashScope provider: regions, options, media, error mapping — against the fake server."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from genrouter.catalog import Catalog, load_builtin_catalog
from genrouter.config import ProviderConfig
from genrouter.errors import (
    AuthenticationError,
    BadRequestError,
    BillingError,
    ContentFilteredError,
    ContextWindowExceededError,
    InvalidRequestError,
    MediaError,
    NotFoundError,
    ProviderError,
    RateLimitError,
    ServerError,
    UnsupportedInputError,
)
from genrouter.providers.base import ProviderCall
from genrouter.providers.dashscope import (
    MAX_IMAGE_BYTES,
    REGION_BASE_URLS,
    DashScopeProvider,
    dashscope_base_url,
    map_dashscope_error,
)
from genrouter.request import build_request
from genrouter.testing import FakeLLMServer, Reply
from genrouter.testing import dashscope as replies

KEY = "sk-test-9f8e7d6c5b4a39281706"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_builtin_catalog()


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient() as client:
        yield client


def provider_for(
    server: FakeLLMServer, http: httpx2.AsyncClient, **config: Any
) -> DashScopeProvider:
    settings = {"type": "dashscope", "base_url": server.dashscope_base_url, **config}
    return DashScopeProvider(
        "dashscope", ProviderConfig(**settings), http=http, env={"DASHSCOPE_API_KEY": KEY}
    )


def call_for(
    catalog: Catalog, model: str, *messages: dict[str, Any], **params: Any
) -> ProviderCall:
    request = build_request({"model": model, "messages": list(messages), **params})
    return ProviderCall(request=request, model=catalog.get(model))


def user(*parts: dict[str, Any] | str) -> dict[str, Any]:
    content = [{"type": "text", "text": p} if isinstance(p, str) else p for p in parts]
    return {"role": "user", "content": content}


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def png_bytes(width: int = 4, height: int = 3) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\x10\x20\x30" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def jpeg_bytes() -> bytes:
    pil = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    pil.new("RGB", (5, 7), (0, 128, 255)).save(buffer, format="JPEG")
    return buffer.getvalue()


class ToFakeServer(httpx2.AsyncBaseTransport):
    """Sends every request to the fake server on 127.0.0.1, whatever host it names."""

    def __init__(self, server: FakeLLMServer) -> None:
        self._server = server
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self._server.port)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def sent_parts(server: FakeLLMServer) -> list[dict[str, Any]]:
    content = server.requests[-1].body["messages"][-1]["content"]
    assert isinstance(content, list)
    return content


# --- regions and configuration --------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        (None, "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"),
        ("intl", "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"),
        ("us", "https://dashscope-us.aliyuncs.com/compatible-mode/v1"),
        ("cn", "https://dashscope.aliyuncs.com/compatible-mode/v1"),
    ],
)
async def test_region_picks_the_base_url(
    region: str | None, expected: str, http: httpx2.AsyncClient
) -> None:
    assert dashscope_base_url(region) == expected
    config = ProviderConfig(type="dashscope", region=region)
    made = DashScopeProvider("ds", config, http=http, env={})
    assert made.base_url == expected
    assert made.region == (region or "intl")
    assert not made.has_credentials()


async def test_base_url_overrides_region(http: httpx2.AsyncClient) -> None:
    config = ProviderConfig(type="dashscope", region="cn", base_url="https://proxy.example/v1/")
    made = DashScopeProvider("ds", config, http=http, env={})
    assert made.base_url == "https://proxy.example/v1"
    assert made.region is None
    assert set(REGION_BASE_URLS) == {"intl", "us", "cn"}


async def test_keys_come_from_each_providers_own_variable(http: httpx2.AsyncClient) -> None:
    env = {"DASHSCOPE_API_KEY": "sk-intl-0000000000", "DASHSCOPE_CN_KEY": "sk-cn-1111111111"}
    intl = DashScopeProvider("intl", ProviderConfig(type="dashscope"), http=http, env=env)
    china = DashScopeProvider(
        "cn",
        ProviderConfig(type="dashscope", region="cn", api_key="${DASHSCOPE_CN_KEY}"),
        http=http,
        env=env,
    )
    assert intl.has_credentials() and china.has_credentials()
    assert "sk-" not in repr(intl) + repr(china)


# --- text, stream, usage --------------------------------------------------------------------


async def test_text_completion(
    server: FakeLLMServer, http: httpx2.AsyncClient, catalog: Catalog
) -> None:
    server.enqueue(Reply.text("Beijing is the capital."))
    provider = provider_for(server, http)
    result = await provider.complete(
        call_for(catalog, "qwen-max", {"role": "user", "content": "Capital of China?"})
    )
    assert result.choices[0].message.content == "Beijing is the capital."
    assert result.usage is not None and result.usage.total_tokens > 0
    sent = server.requests[-1]
    assert sent.path == "/compatible-mode/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.body["model"] == "qwen-max"
    assert "stream" not in sent.body


async def test_stream_reports_usage(
    server: FakeLLMServer, http: httpx2.AsyncClient, catalog: Catalog
) -> None:
    server.enqueue(Reply.text("one two three"))
    provider = provider_for(server, http)
    call = call_for(catalog, "qwen-max-latest", {"role": "user", "content": "count"})
    chunks = [chunk async for chunk in provider.stream(call)]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    body = server.requests[-1].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_partial_assistant_message_is_kept(
    server: FakeLLMServer, http: httpx2.AsyncClient, catalog: Catalog
) -> None:
    server.enqueue(Reply.text(" and the rest."))
    provider = provider_for(server, http)
    request = build_request(
        {"model": "qwen-max", "messages": [{"role": "user", "content": "Write a line"}]}
    ).continued("The first half")
    await provider.complete(ProviderCall(request=request, model=catalog.get("qwen-max")))
    last = server.requests[-1].body["messages"][-1]
    assert last == {"role": "assistant", "content": "The first half", "partial": True}


# --- provider options -----------------------------------------------------------------------


async def test_provider_options_reach_the_body(
    server: FakeLLMServer, http: httpx2.AsyncClient, catalog: Catalog
) -> None:
    server.enqueue(Reply.text("ok"))
    provider = provider_for(server, http)
    options = {
        "enable_search": True,
        "search_options": {"forced_search": True, "search_strategy": "max"},
        "top_k": 20,
        "repetition_penalty": 1.05,
        "enable_thinking": False,
    }
    await provider.complete(
        call_for(
            catalog,
            "qwen-max",
            {"role": "user", "content": "news?"},
            provider_options={"dashscope": options, "openai": {"store": True}},
        )
    )
    body = server.requests[-1].body
    for key, value in options.items():
        assert body[key] == value
    assert "store" not in body  # another vendor's options stay out


async def test_unknown_provider_option_is_refused_before_sending(
    server: FakeLLMServer, http: httpx2.AsyncClient, catalog: Catalog
) -> None:
    provider = provider_for(server, http)
    call = call_for(
        catalog,
        "qwen-max",
        {"role": "user", "content": "hi"},
        provider_options={"dashscope": {"enable_serch": True}},
    )
    with pytest.raises(InvalidRequestError) as caught:
        await provider.complete(call)
    assert caught.value.param == "provider_options.dashscope.enable_serch"
    assert "enable_search" in str(caught.value)  # the known names are listed
    with pytest.raises(InvalidRequestError, match="thinking_budget"):
        await provider.complete(
            call_for(
                catalog,
                "qwen-max",
                {"role": "user", "content": "hi"},
                provider_options={"dashscope": {"thinking_budget": 0}},
            )
        )
    assert server.requests == []


# --- vision ---------------------------------------------------------------------------------


async def test_image_url_passes_through_untouched(
    server: FakeLLMServer, http: httpx2.AsyncClient, catalog: Catalog
) -> None:
    server.enqueue(Reply.text("a dog"))
    provider = provider_for(server, http)
    url = "https://help-static.example/dog_and_girl.jpeg?x-oss-process=1"
    await provider.complete(call_for(catalog, "qwen-vl-max", user(image(url), "What is it?")))
    assert sent_parts(server)[0] == {"type": "image_url", "image_url": {"url": url}}


async def test_local_png_and_jpeg_become_data_uris(
    server: FakeLLMServer, http: httpx2.AsyncClient, catalog: Catalog, tmp_path: Path
) -> None:
    server.enqueue(Reply.text("two pictures"))
    png, jpeg = png_bytes(), jpeg_bytes()
    # Misleading extensions: the type comes from the content.
    (tmp_path / "photo.jpg").write_bytes(png)
    (tmp_path / "drawing.png").write_bytes(jpeg)
    remote = "https://example.com/c.webp"
    provider = provider_for(server, http)
    await provider.complete(
        call_for(
            catalog,
            "qwen-vl-plus",
            user(
                image(str(tmp_path / "photo.jpg")),
                image((tmp_path / "drawing.png").as_uri()),
                image(remote),
                "Compare them",
            ),
        )
    )
    parts = sent_parts(server)
    assert parts[0]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(png).decode(
        "ascii"
    )
    assert parts[1]["image_url"]["url"] == "data:image/jpeg;base64," + base64.b64encode(
        jpeg
    ).decode("ascii")
    assert parts[2]["image_url"]["url"] == remote
    assert parts[3] == {"type": "text", "text": "Compare them"}


async def test_video_frames_are_resolved_like_images(
    server: FakeLLMServer, http: httpx2.AsyncClient, catalog: Catalog, tmp_path: Path
) -> None:
    server.enqueue(Reply.text("a short clip"), Reply.text("a file"))
    frame = tmp_path / "frame1.png"
    frame.write_bytes(png_bytes())
    provider = provider_for(server, http)
    frames = [str(frame), "https://example.com/frame2.jpg"]
    await provider.complete(
        call_for(catalog, "qwen2.5-vl-7b-instruct", user({"type": "video", "video": frames}))
    )
    sent = sent_parts(server)[0]
    assert sent["type"] == "video"
    assert sent["video"][0].startswith("data:image/png;base64,")
    assert sent["video"][1] == "https://example.com/frame2.jpg"

    video = {"type": "video_url", "video_url": {"url": "https://example.com/clip.mp4"}}
    await provider.complete(call_for(catalog, "qwen-vl-max", user(video, "Describe")))
    assert sent_parts(server)[0] == video


async def test_bad_media_fails_before_anything_is_sent(
    server: FakeLLMServer, http: httpx2.AsyncClient, catalog: Catalog, tmp_path: Path
) -> None:
    provider = provider_for(server, http)
    missing = str(tmp_path / "nope.png")
    with pytest.raises(MediaError, match="does not exist") as caught:
        await provider.complete(call_for(catalog, "qwen-vl-max", user(image(missing), "?")))
    assert caught.value.source == missing

    big = tmp_path / "huge.png"
    big.write_bytes(png_bytes() + b"\0" * (MAX_IMAGE_BYTES + 1))
    with pytest.raises(MediaError, match="over the limit"):
        await provider.complete(call_for(catalog, "qwen-vl-max", user(image(str(big)), "?")))

    frames = {"type": "video", "video": ["https://example.com/a.png", missing]}
    with pytest.raises(MediaError):
        await provider.complete(call_for(catalog, "qwen-vl-max", user(frames)))

    local_video = {"type": "video_url", "video_url": {"url": str(tmp_path / "clip.mp4")}}
    with pytest.raises(MediaError, match="local file"):
        await provider.complete(call_for(catalog, "qwen-vl-max", user(local_video)))

    huge_uri = "data:image/png;base64," + "A" * (10 * 1024 * 1024 + 8)
    with pytest.raises(MediaError, match="base64"):
        await provider.complete(call_for(catalog, "qwen-vl-max", user(image(huge_uri))))

    with pytest.raises(UnsupportedInputError):
        await provider.complete(call_for(catalog, "qwen-max", user(image("https://e.com/a.png"))))
    assert server.requests == []


# --- errors over the wire -------------------------------------------------------------------


async def test_wrong_region_key_is_an_authentication_error_naming_the_region(
    server: FakeLLMServer, http: httpx2.AsyncClient, catalog: Catalog
) -> None:
    server.enqueue(replies.invalid_api_key())
    # The provider calls the real US host name; the transport delivers it to the fake server.
    async with httpx2.AsyncClient(transport=ToFakeServer(server)) as redirected:
        provider = DashScopeProvider(
            "dashscope",
            ProviderConfig(type="dashscope", region="us"),
            http=redirected,
            env={"DASHSCOPE_API_KEY": KEY},
        )
        with pytest.raises(AuthenticationError) as caught:
            await provider.complete(
                call_for(catalog, "qwen-max", {"role": "user", "content": "hi"})
            )
    assert server.requests[-1].headers["host"] == "dashscope-us.aliyuncs.com"
    error = caught.value
    assert error.status_code == 401
    assert error.request_id == replies.DEFAULT_REQUEST_ID
    text = str(error)
    assert "region 'us'" in text and "dashscope-us.aliyuncs.com" in text
    assert "another region" in text
    assert KEY not in text + repr(error)


async def test_content_filter_inside_a_stream(
    server: FakeLLMServer, http: httpx2.AsyncClient, catalog: Catalog
) -> None:
    server.enqueue(
        Reply.text("some words then", error_event=replies.data_inspection_event(), error_after=2)
    )
    provider = provider_for(server, http)
    call = call_for(catalog, "qwen-max", {"role": "user", "content": "tell me"})
    received: list[str] = []
    with pytest.raises(ContentFilteredError) as caught:
        async for chunk in provider.stream(call):
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(received) == "some words"
    assert caught.value.request_id == replies.DEFAULT_REQUEST_ID
    assert caught.value.model == "qwen-max"


@pytest.mark.parametrize(
    ("reply", "expected", "code"),
    [
        (replies.throttling(retry_after=2.5), RateLimitError, "Throttling.RateQuota"),
        (replies.throttling(code="Throttling"), RateLimitError, "Throttling"),
        (replies.allocation_quota(), RateLimitError, "insufficient_quota"),
        (replies.arrearage(), BillingError, "Arrearage"),
        (replies.arrearage(native=True), BillingError, "Arrearage"),
        (replies.data_inspection_failed(), ContentFilteredError, "data_inspection_failed"),
        (replies.model_not_found("qwen-max"), NotFoundError, "model_not_found"),
        (replies.context_too_long(), ContextWindowExceededError, "InvalidParameter"),
        (replies.internal_error(), ServerError, "InternalError"),
        (replies.invalid_api_key(native=True), AuthenticationError, "InvalidApiKey"),
    ],
)
async def test_http_errors_map_to_typed_errors(
    reply: Reply,
    expected: type[ProviderError],
    code: str,
    server: FakeLLMServer,
    http: httpx2.AsyncClient,
    catalog: Catalog,
) -> None:
    server.enqueue(reply)
    provider = provider_for(server, http)
    with pytest.raises(ProviderError) as caught:
        await provider.complete(call_for(catalog, "qwen-max", {"role": "user", "content": "hi"}))
    error = caught.value
    assert type(error) is expected
    assert error.code == code
    assert error.provider == "dashscope" and error.model == "qwen-max"
    assert error.request_id == replies.DEFAULT_REQUEST_ID
    if code == "Throttling.RateQuota":
        assert isinstance(error, RateLimitError) and error.retry_after == 2.5


# --- the pure mapping -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "payload", "expected"),
    [
        (
            400,
            {"code": "DataInspectionFailed", "message": "Input data may ..."},
            ContentFilteredError,
        ),
        (
            400,
            {"error": {"message": "<400> InternalError.Algo.DataInspectionFailed: Input text"}},
            ContentFilteredError,
        ),
        (
            None,
            {"code": "DataInspectionFailed", "message": "Output data may ..."},
            ContentFilteredError,
        ),
        (429, {"code": "Throttling.AllocationQuota", "message": "quota"}, RateLimitError),
        (400, {"code": "InvalidParameter", "message": "temperature must be < 2"}, BadRequestError),
        (400, {"code": "InternalError.Algo.InvalidParameter", "message": "bad"}, BadRequestError),
        (500, {"code": "InternalError.Algo", "message": "boom"}, ServerError),
        (404, {"code": "ModelNotFound", "message": "no"}, NotFoundError),
        (503, b"<html>busy</html>", ServerError),
        (418, {"code": "Something.New", "message": "?"}, BadRequestError),
    ],
)
def test_map_dashscope_error(
    status: int | None, payload: Any, expected: type[ProviderError]
) -> None:
    error = map_dashscope_error(status, payload, {}, provider="ds", model="qwen-max")
    assert type(error) is expected


def test_error_messages_never_hold_the_key() -> None:
    payload = {
        "code": "InvalidApiKey",
        "message": f"Invalid API-key provided: {KEY} (also sk-another-key-123456)",
        "request_id": "r-1",
    }
    error = map_dashscope_error(401, payload, {}, region="cn", secrets=[KEY])
    assert isinstance(error, AuthenticationError)
    text = str(error) + repr(error) + error.message
    assert KEY not in text and "sk-another" not in text
    assert "region 'cn'" in text and "dashscope.aliyuncs.com" in text
    custom = map_dashscope_error(401, payload, {}, base_url="https://proxy.example/v1")
    assert "base URL https://proxy.example/v1" in str(custom)


def test_retry_after_header_is_kept() -> None:
    error = map_dashscope_error(
        429, {"code": "Throttling.RateQuota", "message": "slow down"}, {"retry-after": "7"}
    )
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 7.0
