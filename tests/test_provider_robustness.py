"""Odd vendor behaviour still ends in typed errors that never show the key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from genrouter.catalog import load_builtin_catalog
from genrouter.config import ProviderConfig
from genrouter.errors import (
    AuthenticationError,
    BillingError,
    ContentFilteredError,
    MediaError,
    ResponseFormatError,
)
from genrouter.media import image_dimensions, resolve_image_source
from genrouter.providers.base import ProviderCall
from genrouter.providers.dashscope import DashScopeProvider
from genrouter.providers.openai import OpenAIProvider
from genrouter.request import build_request

CATALOG = load_builtin_catalog()
KEY = "tok_live_0123456789abcdefghijklmnop"  # not sk-shaped: only the exact-key redaction helps


def call_for(model: str, **params: Any) -> ProviderCall:
    request = build_request(
        {"model": model, "messages": [{"role": "user", "content": "hi"}], **params}
    )
    return ProviderCall(request, CATALOG.get(model))


def openai_with(
    handler: Callable[[httpx2.Request], httpx2.Response], key: str = KEY
) -> OpenAIProvider:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    config = ProviderConfig(type="openai", base_url="https://api.example.invalid/v1")
    return OpenAIProvider("openai", config, http=http, env={"OPENAI_API_KEY": key})


async def test_a_non_sse_body_in_a_stream_is_typed_and_redacted() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        body = f"Unauthorized: token {KEY} is not valid\n".encode()
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    provider = openai_with(handler)
    with pytest.raises(ResponseFormatError) as caught:
        async for _ in provider.stream(call_for("o3-mini")):
            pass
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)


async def test_a_key_cut_by_truncation_is_still_redacted() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(401, content=("x" * 285 + " " + KEY).encode())

    with pytest.raises(AuthenticationError) as caught:
        await openai_with(handler).complete(call_for("o3-mini"))
    assert KEY[:12] not in str(caught.value)


async def test_a_body_that_fails_to_decode_is_a_response_format_error() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=b"not gzip", headers={"content-encoding": "gzip"})

    provider = openai_with(handler)
    with pytest.raises(ResponseFormatError):
        await provider.complete(call_for("o3-mini"))
    with pytest.raises(ResponseFormatError):
        async for _ in provider.stream(call_for("o3-mini")):
            pass


@pytest.mark.parametrize("bad_key", ["sk-abc\n", "sk-ab c", "sk-clé-unicode"])
async def test_a_malformed_key_is_refused_without_showing_it(bad_key: str) -> None:
    sent: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return httpx2.Response(200, json={})

    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY") as caught:
        await openai_with(handler, key=bad_key).complete(call_for("o3-mini"))
    assert bad_key.strip() not in str(caught.value) and sent == []


async def test_dashscope_native_error_shapes_map_in_streams_and_bodies() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if b'"stream":true' in request.content:
            event = (
                b'data: {"code":"DataInspectionFailed","message":"bad output",'
                b'"request_id":"r1"}\n\n'
            )
            return httpx2.Response(
                200, content=event, headers={"content-type": "text/event-stream"}
            )
        return httpx2.Response(
            200, json={"code": "Arrearage", "message": "overdue", "request_id": "r2"}
        )

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    provider = DashScopeProvider(
        "dashscope", ProviderConfig(type="dashscope"), http=http, env={"DASHSCOPE_API_KEY": KEY}
    )
    with pytest.raises(ContentFilteredError):
        async for _ in provider.stream(call_for("qwen-max")):
            pass
    with pytest.raises(BillingError):
        await provider.complete(call_for("qwen-max"))


@pytest.mark.parametrize("source", ["/tmp/a\x00b.png", "file:///a%00b.png", "~nosuchuser9/x.png"])
def test_odd_image_paths_are_media_errors(source: str) -> None:
    with pytest.raises(MediaError):
        resolve_image_source(source)


def test_a_truncated_image_header_has_no_size() -> None:
    assert image_dimensions(b"RIFF\x00\x00\x00\x00WEBPVP8L") is None
