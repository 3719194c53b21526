"""``oss://`` media: DashScope sends them with its resolve header; others refuse them (issue 15)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from genrouter import AsyncClient
from genrouter.errors import MediaError
from genrouter.media import is_oss_url, resolve_image_source
from genrouter.providers.dashscope import OSS_RESOLVE_HEADER
from genrouter.testing import FakeLLMServer

# These tests are about counting and media, not lifecycle: judge models as of before the
# 2026 retirements (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("catalog_before_2026_retirements")

KEYS = {"OPENAI_API_KEY": "sk-test-openai-0123456789", "DASHSCOPE_API_KEY": "sk-test-ds-98765"}
OSS_IMAGE = "oss://dashscope-instant/abc/2026-12-01/dog.png"
OSS_VIDEO = "oss://dashscope-instant/abc/2026-12-01/clip.mp4"


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


def _config(server: FakeLLMServer, **dashscope: Any) -> dict[str, Any]:
    return {
        "providers": {
            "openai": {"type": "openai", "base_url": server.openai_base_url},
            "dashscope": {"type": "dashscope", "base_url": server.dashscope_base_url, **dashscope},
        }
    }


def _ask(*parts: dict[str, Any]) -> list[Any]:
    return [{"role": "user", "content": [*parts, {"type": "text", "text": "what is this?"}]}]


def _image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


@pytest.mark.parametrize("stream", [False, True])
async def test_dashscope_sends_oss_urls_untouched_with_the_resolve_header(
    server: FakeLLMServer, stream: bool
) -> None:
    video = {"type": "video_url", "video_url": {"url": OSS_VIDEO}}
    frames = {"type": "video", "video": [OSS_IMAGE, OSS_IMAGE]}
    async with AsyncClient(_config(server), env=KEYS) as client:
        for parts in ((_image(OSS_IMAGE),), (video,), (frames,)):
            result = await client.chat.completions.create(
                model="dashscope/qwen-vl-max", messages=_ask(*parts), stream=stream
            )
            if stream:
                async with result:  # type: ignore[union-attr]
                    async for _chunk in result:  # type: ignore[union-attr]
                        pass
    assert len(server.requests) == 3
    for sent in server.requests:
        assert sent.headers[OSS_RESOLVE_HEADER.lower()] == "enable"
    content = [r.body["messages"][0]["content"][0] for r in server.requests]
    assert content[0]["image_url"]["url"] == OSS_IMAGE
    assert content[1]["video_url"]["url"] == OSS_VIDEO
    assert content[2]["video"] == [OSS_IMAGE, OSS_IMAGE]


async def test_no_resolve_header_without_oss_media(server: FakeLLMServer) -> None:
    async with AsyncClient(_config(server), env=KEYS) as client:
        await client.chat.completions.create(
            model="dashscope/qwen-vl-max", messages=_ask(_image("https://example.com/a.png"))
        )
    assert OSS_RESOLVE_HEADER.lower() not in server.requests[0].headers


async def test_other_providers_refuse_oss_urls_before_sending(server: FakeLLMServer) -> None:
    async with AsyncClient(_config(server), env=KEYS) as client:
        with pytest.raises(MediaError, match="only a dashscope provider") as caught:
            await client.chat.completions.create(
                model="openai/gpt-4o-mini", messages=_ask(_image(OSS_IMAGE))
            )
    assert caught.value.source == OSS_IMAGE
    assert "does not exist" not in str(caught.value)
    assert server.requests == []


async def test_dashscope_through_the_sdk_refuses_oss_clearly(server: FakeLLMServer) -> None:
    async with AsyncClient(_config(server, use_sdk=True), env=KEYS) as client:
        with pytest.raises(MediaError, match="use_sdk = false"):
            await client.chat.completions.create(
                model="dashscope/qwen-vl-max", messages=_ask(_image(OSS_IMAGE))
            )
    assert server.requests == []


def test_media_helpers() -> None:
    assert is_oss_url(OSS_IMAGE) and is_oss_url("OSS://x") and not is_oss_url("/tmp/oss://x")
    with pytest.raises(MediaError, match="DashScope temporary upload"):
        resolve_image_source(OSS_IMAGE)
