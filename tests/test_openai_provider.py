"""OpenAIProvider / OpenAICompatibleProvider against the fake server and httpx2.MockTransport."""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from PIL import Image

from genrouter.catalog import load_builtin_catalog
from genrouter.config import ProviderConfig
from genrouter.errors import (
    AuthenticationError,
    BadRequestError,
    BillingError,
    ConfigError,
    ContentFilteredError,
    ContextWindowExceededError,
    NotFoundError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    RedactedCause,
    ResponseFormatError,
    ServerError,
    UnsupportedInputError,
)
from genrouter.providers._errors_http import (
    error_from_payload,
    error_from_status,
    parse_retry_after,
)
from genrouter.providers.base import Provider, ProviderCall
from genrouter.providers.openai import OpenAIProvider
from genrouter.providers.openai_compat import OpenAICompatibleProvider
from genrouter.request import build_request
from genrouter.testing import FakeLLMServer, Reply
from genrouter.types import ChatCompletionChunk

KEY = "sk-test-SECRETKEY1234567890"
CATALOG = load_builtin_catalog()
HI = [{"role": "user", "content": "hi there"}]


def make_call(
    model: str, messages: list[dict[str, Any]] | None = None, **params: Any
) -> ProviderCall:
    request = build_request({"model": model, "messages": messages or HI, **params})
    return ProviderCall(request, CATALOG.get(model))


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient() as client:
        yield client


def openai_at(base_url: str, http: httpx2.AsyncClient, **config: Any) -> OpenAIProvider:
    settings = ProviderConfig(type="openai", base_url=base_url, **config)
    return OpenAIProvider("openai", settings, http=http, env={"OPENAI_API_KEY": KEY})


@pytest.fixture
def provider(fake_server: FakeLLMServer, http: httpx2.AsyncClient) -> OpenAIProvider:
    return openai_at(fake_server.openai_base_url, http, organization="org-1", project="proj-1")


async def collect(
    provider: OpenAICompatibleProvider, call: ProviderCall
) -> list[ChatCompletionChunk]:
    return [chunk async for chunk in provider.stream(call)]


def text_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# -- normal answers ----------------------------------------------------------------------


async def test_completion(provider: OpenAIProvider, fake_server: FakeLLMServer) -> None:
    assert isinstance(provider, Provider)
    result = await provider.complete(make_call("gpt-4o-mini"))
    assert result.choices[0].message.content == "echo: hi there"
    assert result.usage is not None and result.usage.total_tokens == 5
    (seen,) = fake_server.requests
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.headers["openai-organization"] == "org-1"
    assert seen.headers["openai-project"] == "proj-1"
    assert seen.body == {"model": "gpt-4o-mini", "messages": HI}


async def test_stream_with_usage(provider: OpenAIProvider, fake_server: FakeLLMServer) -> None:
    fake_server.enqueue(Reply.text("Hello streaming world!", reasoning="hmm ok"))
    chunks = await collect(provider, make_call("gpt-4o-mini"))
    assert text_of(chunks) == "Hello streaming world!"
    reasoning = "".join(c.choices[0].delta.reasoning_content or "" for c in chunks if c.choices)
    assert reasoning == "hmm ok"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    body = fake_server.requests[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_o3_mini_wire_rules(provider: OpenAIProvider, fake_server: FakeLLMServer) -> None:
    messages = [{"role": "system", "content": "be terse"}, *HI]
    call = make_call(
        "o3-mini", messages, temperature=0.2, top_p=0.9, max_tokens=50, reasoning_effort="high"
    )
    chunks = await collect(provider, call)
    assert text_of(chunks) == "echo: hi there"
    body = fake_server.requests[0].body
    assert body["model"] == "o3-mini"
    assert body["messages"][0] == {"role": "developer", "content": "be terse"}
    assert body["max_completion_tokens"] == 50
    assert "max_tokens" not in body and "temperature" not in body and "top_p" not in body
    assert body["reasoning_effort"] == "high"
    assert body["stream_options"] == {"include_usage": True}
    assert call.dropped_params == ["temperature", "top_p"]


async def test_gpt4o_mini_keeps_params_and_maps_developer_to_system(
    provider: OpenAIProvider, fake_server: FakeLLMServer
) -> None:
    messages = [{"role": "developer", "content": "rules"}, *HI]
    call = make_call("gpt-4o-mini", messages, temperature=0.2, max_completion_tokens=9, seed=3)
    await provider.complete(call)
    body = fake_server.requests[0].body
    assert body["messages"][0]["role"] == "system"
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.2, 9, 3)
    assert "max_completion_tokens" not in body
    assert call.dropped_params == []


def test_body_defaults_options_and_extra_body(provider: OpenAIProvider) -> None:
    catalog = CATALOG.merged(
        {"openai/gpt-4o-mini": {"defaults": {"temperature": 0.1, "seed": 1, "not_wire": True}}}
    )
    request = build_request(
        {
            "model": "gpt-4o-mini",
            "messages": [*HI, {"role": "assistant", "content": "x", "partial": True}],
            "seed": 7,
            "provider_options": {"openai": {"store": False}, "dashscope": {"enable_search": True}},
            "extra_body": {"metadata": {"a": "b"}},
        }
    )
    call = ProviderCall(request, catalog.get("openai/gpt-4o-mini"))
    body = provider.build_body(call, stream=False)
    assert body["temperature"] == 0.1  # a default under nothing the caller set
    assert body["seed"] == 7  # the caller wins
    assert "not_wire" not in body and "enable_search" not in body
    assert body["store"] is False
    assert body["metadata"] == {"a": "b"}
    # OpenAI has no prefill: the partial answer is sent without genrouter's "partial" flag,
    # followed by a user turn asking to continue it (the "instruction" resume dialect).
    assert body["messages"][-2] == {"role": "assistant", "content": "x"}
    assert body["messages"][-1]["role"] == "user"


# -- errors by status --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, None, BadRequestError),
        (400, "context_length_exceeded", ContextWindowExceededError),
        (400, "content_filter", ContentFilteredError),
        (400, "content_policy_violation", ContentFilteredError),
        (401, "invalid_api_key", AuthenticationError),
        (403, None, PermissionDeniedError),
        (404, "model_not_found", NotFoundError),
        (408, None, ProviderTimeoutError),
        (409, None, ServerError),
        (422, None, BadRequestError),
        (429, "rate_limit_exceeded", RateLimitError),
        (429, "insufficient_quota", BillingError),
        (500, None, ServerError),
        (503, None, ServerError),
    ],
)
async def test_status_errors(
    provider: OpenAIProvider,
    fake_server: FakeLLMServer,
    status: int,
    code: str | None,
    expected: type[ProviderError],
) -> None:
    fake_server.enqueue(Reply.error(status, code=code, headers={"x-request-id": "req-42"}))
    with pytest.raises(expected) as info:
        await provider.complete(make_call("gpt-4o-mini"))
    error = info.value
    assert type(error) is expected
    assert (error.provider, error.model, error.status_code) == ("openai", "gpt-4o-mini", status)
    assert error.code == code
    assert error.request_id == "req-42"


async def test_status_error_on_stream(provider: OpenAIProvider, fake_server: FakeLLMServer) -> None:
    fake_server.enqueue(Reply.error(503, message="overloaded"))
    with pytest.raises(ServerError, match="overloaded"):
        await collect(provider, make_call("gpt-4o-mini"))
    assert await fake_server.wait_for_connections(1) <= 1


async def test_rate_limit_retry_after(provider: OpenAIProvider, fake_server: FakeLLMServer) -> None:
    fake_server.enqueue(Reply.error(429, headers={"Retry-After": "0.1"}))
    fake_server.enqueue(Reply.error(429, headers={"retry-after-ms": "250", "Retry-After": "9"}))
    delays = []
    for _ in range(2):
        with pytest.raises(RateLimitError) as info:
            await provider.complete(make_call("gpt-4o-mini"))
        delays.append(info.value.retry_after)
    assert delays == [0.1, 0.25]


def test_parse_retry_after() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "junk", "retry-after": "2"}) == 2.0
    date = "Wed, 21 Oct 2015 07:28:10 GMT"
    assert parse_retry_after({"retry-after": date}, now=1445412480.0) == 10.0
    assert parse_retry_after({"retry-after": date}) == 0.0  # in the past: no wait
    assert parse_retry_after({"retry-after": "-5"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_error_bodies_in_other_shapes() -> None:
    flat = b'{"code": "Arrearage", "message": "overdue", "request_id": "r-1"}'
    error = error_from_status(400, flat, {}, provider="p")
    assert (type(error), error.code, error.request_id) == (BillingError, "Arrearage", "r-1")
    html = error_from_status(502, b"<html>Bad Gateway</html>", {})
    assert type(html) is ServerError and "Bad Gateway" in html.message
    phrase = error_from_status(400, b'{"error": {"message": "maximum context length is 8k"}}', {})
    assert type(phrase) is ContextWindowExceededError
    streamed = error_from_payload({"error": {"code": "DataInspectionFailed", "message": "no"}})
    assert type(streamed) is ContentFilteredError
    limited = error_from_payload({"error": {"message": "slow down", "status_code": 429}})
    assert type(limited) is RateLimitError and limited.status_code == 429
    assert type(error_from_payload({"error": "mystery"})) is ServerError


# -- broken streams and bodies -----------------------------------------------------------


async def test_stream_cut_midway_is_connection_lost(
    provider: OpenAIProvider, fake_server: FakeLLMServer
) -> None:
    fake_server.enqueue(Reply.text("one two three four five", cut_after=2))
    received: list[ChatCompletionChunk] = []
    with pytest.raises(ProviderConnectionError) as info:
        async for chunk in provider.stream(make_call("gpt-4o-mini")):
            received.append(chunk)
    assert info.value.code == "connection_lost"
    assert text_of(received) == "one two"
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)


async def test_completion_cut_midway_is_connection_lost(
    provider: OpenAIProvider, fake_server: FakeLLMServer
) -> None:
    fake_server.enqueue(Reply.text("whatever", cut_after=0))
    with pytest.raises(ProviderConnectionError) as info:
        await provider.complete(make_call("gpt-4o-mini"))
    assert info.value.code == "connection_lost"


@pytest.mark.parametrize(("kind", "stream"), [("json", False), ("json", True), ("sse", True)])
async def test_malformed_responses(
    provider: OpenAIProvider, fake_server: FakeLLMServer, kind: Any, stream: bool
) -> None:
    fake_server.enqueue(Reply(malformed=kind))
    call = make_call("gpt-4o-mini")
    with pytest.raises(ResponseFormatError) as info:
        await (collect(provider, call) if stream else provider.complete(call))
    assert info.value.provider == "openai"
    assert info.value.__cause__ is not None


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"error": {"code": "data_inspection_failed", "message": "unsafe"}}, ContentFilteredError),
        ({"error": {"code": "content_filter", "message": "stopped"}}, ContentFilteredError),
        ({"error": {"code": "server_error", "message": "oops"}}, ServerError),
    ],
)
async def test_error_event_inside_stream(
    provider: OpenAIProvider,
    fake_server: FakeLLMServer,
    event: dict[str, Any],
    expected: type[ProviderError],
) -> None:
    fake_server.enqueue(Reply.text("a b c", error_event=event, error_after=2))
    received: list[ChatCompletionChunk] = []
    with pytest.raises(expected) as info:
        async for chunk in provider.stream(make_call("gpt-4o-mini")):
            received.append(chunk)
    assert text_of(received) == "a b"
    assert info.value.model == "gpt-4o-mini"


def mock_provider(
    handler: Callable[[httpx2.Request], httpx2.Response], http_factory: list[httpx2.AsyncClient]
) -> OpenAICompatibleProvider:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    http_factory.append(http)
    config = ProviderConfig(type="openai_compatible", base_url="http://mock.invalid/v1")
    return OpenAICompatibleProvider("compat", config, http=http, env={})


@pytest.fixture
async def mock_clients() -> AsyncIterator[list[httpx2.AsyncClient]]:
    clients: list[httpx2.AsyncClient] = []
    yield clients
    for client in clients:
        await client.aclose()


async def test_stream_ending_without_done_or_finish_is_reported_as_it_is(
    mock_clients: list[httpx2.AsyncClient],
) -> None:
    sse = (
        b'data: {"id": "x", "created": 1, "model": "m",'
        b' "choices": [{"delta": {"content": "hi"}}]}\n\n'
    )

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=sse, headers={"content-type": "text/event-stream"})

    provider = mock_provider(handler, mock_clients)
    # The provider reports the wire; the executor judges the missing finish_reason an
    # interruption (tests/test_resilience.py).
    chunks = await collect(provider, make_call("gpt-4o-mini"))
    assert [c.choices[0].delta.content for c in chunks] == ["hi"]
    assert chunks[0].choices[0].finish_reason is None


async def test_stream_with_finish_but_no_done_is_accepted(
    mock_clients: list[httpx2.AsyncClient],
) -> None:
    sse = (
        b'data: {"id": "x", "created": 1, "model": "m",'
        b' "choices": [{"delta": {"content": "hi"}, "finish_reason": "stop"}]}'
    )  # no [DONE] and no final blank line: some compatible servers end like this

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=sse, headers={"content-type": "text/event-stream"})

    chunks = await collect(mock_provider(handler, mock_clients), make_call("gpt-4o-mini"))
    assert text_of(chunks) == "hi"


async def test_error_body_with_status_200_is_mapped(mock_clients: list[httpx2.AsyncClient]) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json={"error": {"code": "context_length_exceeded"}})

    with pytest.raises(ContextWindowExceededError):
        await mock_provider(handler, mock_clients).complete(make_call("gpt-4o-mini"))


@pytest.mark.parametrize(
    ("exc", "expected", "code"),
    [
        (httpx2.ConnectError("refused"), ProviderConnectionError, "connect_failed"),
        (httpx2.ConnectTimeout("slow connect"), ProviderConnectionError, "connect_failed"),
        (httpx2.ReadError("reset"), ProviderConnectionError, "connection_lost"),
        (httpx2.RemoteProtocolError("closed"), ProviderConnectionError, "connection_lost"),
        (httpx2.ReadTimeout("slow read"), ProviderTimeoutError, None),
        (httpx2.WriteTimeout("slow write"), ProviderTimeoutError, None),
        (httpx2.PoolTimeout("pool"), ProviderTimeoutError, "pool_timeout"),
    ],
)
async def test_transport_errors(
    mock_clients: list[httpx2.AsyncClient],
    exc: httpx2.TransportError,
    expected: type[ProviderError],
    code: str | None,
) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise exc

    provider = mock_provider(handler, mock_clients)
    for attempt in (
        provider.complete(make_call("gpt-4o-mini")),
        collect(provider, make_call("gpt-4o-mini")),
    ):
        with pytest.raises(expected) as info:
            await attempt
        assert type(info.value) is expected
        assert info.value.code == code
        assert info.value.__cause__ is exc


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused_is_connect_failed(http: httpx2.AsyncClient) -> None:
    provider = openai_at(f"http://127.0.0.1:{closed_port()}/v1", http)
    with pytest.raises(ProviderConnectionError) as info:
        await provider.complete(make_call("gpt-4o-mini"))
    assert info.value.code == "connect_failed"


async def test_read_timeout_uses_call_timeout(
    provider: OpenAIProvider, fake_server: FakeLLMServer
) -> None:
    # httpx's read timeout is a backstop one second behind call.timeout (the executor's own,
    # typed clock fires first in a routed call).
    fake_server.enqueue(Reply.text("late", delay_headers_s=4.0))
    call = make_call("gpt-4o-mini")
    call.timeout = 0.1
    with pytest.raises(ProviderTimeoutError):
        await provider.complete(call)


# -- connection release ------------------------------------------------------------------


async def test_abandoned_stream_releases_its_connection(
    provider: OpenAIProvider, fake_server: FakeLLMServer
) -> None:
    fake_server.enqueue(Reply(chunks=["x"] * 200, delay_between_chunks_s=0.01))
    stream = provider.stream(make_call("gpt-4o-mini"))
    async for _chunk in stream:
        if fake_server.connections_open == 1:
            break
    assert fake_server.connections_open == 1
    await stream.aclose()
    assert await fake_server.wait_for_connections(0) == 0


async def test_cancelled_stream_releases_its_connection(
    provider: OpenAIProvider, fake_server: FakeLLMServer
) -> None:
    fake_server.enqueue(Reply(chunks=["x"] * 10, delay_between_chunks_s=5.0))
    started = asyncio.Event()

    async def consume() -> None:
        async with contextlib.aclosing(provider.stream(make_call("gpt-4o-mini"))) as stream:
            async for _chunk in stream:
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await fake_server.wait_for_connections(0) == 0


async def test_finished_stream_leaves_connection_reusable(
    provider: OpenAIProvider, fake_server: FakeLLMServer
) -> None:
    for _ in range(3):
        assert text_of(await collect(provider, make_call("gpt-4o-mini"))) == "echo: hi there"
    await provider.complete(make_call("gpt-4o-mini"))
    assert fake_server.connections_open == 1  # keep-alive: one socket served all four


async def test_aclose_leaves_the_shared_client_open(
    provider: OpenAIProvider, http: httpx2.AsyncClient
) -> None:
    await provider.aclose()
    assert not http.is_closed


# -- input checks and media --------------------------------------------------------------


def png_file(tmp_path: Path) -> Path:
    path = tmp_path / "dot.png"
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), (255, 0, 0)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path


async def test_image_to_text_only_model_is_refused_before_sending(
    provider: OpenAIProvider, fake_server: FakeLLMServer, tmp_path: Path
) -> None:
    image = {"type": "image_url", "image_url": {"url": str(png_file(tmp_path))}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "what?"}, image]}]
    with pytest.raises(UnsupportedInputError, match="openai/o3-mini") as info:
        await provider.complete(make_call("o3-mini", messages))
    assert "image" in str(info.value)
    with pytest.raises(UnsupportedInputError):
        await collect(provider, make_call("o3-mini", messages))
    assert fake_server.requests == []


async def test_local_png_is_sent_as_data_uri(
    provider: OpenAIProvider, fake_server: FakeLLMServer, tmp_path: Path
) -> None:
    path = png_file(tmp_path)
    image = {"type": "image_url", "image_url": {"url": path.as_uri(), "detail": "low"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "what?"}, image]}]
    await provider.complete(make_call("gpt-4o-mini", messages))
    sent = fake_server.requests[0].body["messages"][0]["content"][1]["image_url"]
    assert sent["url"].startswith("data:image/png;base64,iVBORw0KGgo")
    assert sent["detail"] == "low"


# -- credentials -------------------------------------------------------------------------


async def test_key_never_shows(provider: OpenAIProvider, fake_server: FakeLLMServer) -> None:
    fake_server.enqueue(Reply.error(401, message=f"Incorrect API key provided: {KEY}."))
    with pytest.raises(AuthenticationError) as info:
        await provider.complete(make_call("gpt-4o-mini"))
    for text in (str(info.value), repr(info.value), repr(provider), info.value.message):
        assert KEY not in text
        assert "SECRETKEY" not in text


async def test_missing_key(http: httpx2.AsyncClient, fake_server: FakeLLMServer) -> None:
    config = ProviderConfig(type="openai", base_url=fake_server.openai_base_url)
    provider = OpenAIProvider("openai", config, http=http, env={})
    assert not provider.has_credentials()
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        await provider.complete(make_call("gpt-4o-mini"))
    assert fake_server.requests == []


async def test_compatible_server_without_key(
    http: httpx2.AsyncClient, fake_server: FakeLLMServer
) -> None:
    config = ProviderConfig(
        type="openai_compatible", base_url=fake_server.openai_base_url, headers={"X-Team": "a"}
    )
    provider = OpenAICompatibleProvider("local", config, http=http, env={})
    assert provider.has_credentials()
    await provider.complete(make_call("gpt-4o-mini"))
    headers = fake_server.requests[0].headers
    assert "authorization" not in headers
    assert headers["x-team"] == "a"


def test_compatible_provider_needs_a_base_url(http: httpx2.AsyncClient) -> None:
    with pytest.raises(ConfigError, match="base_url"):
        OpenAICompatibleProvider("x", ProviderConfig(type="openai_compatible"), http=http, env={})


# -- the official SDK path ---------------------------------------------------------------


@pytest.fixture
def sdk_provider(fake_server: FakeLLMServer, http: httpx2.AsyncClient) -> OpenAIProvider:
    return openai_at(fake_server.openai_base_url, http, use_sdk=True, organization="org-9")


async def test_sdk_completion(sdk_provider: OpenAIProvider, fake_server: FakeLLMServer) -> None:
    call = make_call("o3-mini", temperature=0.5, reasoning_effort="low")
    result = await sdk_provider.complete(call)
    assert result.choices[0].message.content == "echo: hi there"
    seen = fake_server.requests[0]
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.headers["openai-organization"] == "org-9"
    assert seen.body["reasoning_effort"] == "low" and "temperature" not in seen.body
    assert call.dropped_params == ["temperature"]


async def test_sdk_stream(sdk_provider: OpenAIProvider, fake_server: FakeLLMServer) -> None:
    fake_server.enqueue(Reply.text("via the SDK"))
    chunks = await collect(sdk_provider, make_call("gpt-4o-mini"))
    assert text_of(chunks) == "via the SDK"
    assert chunks[-1].usage is not None
    assert fake_server.requests[0].body["stream_options"] == {"include_usage": True}


async def test_sdk_errors(sdk_provider: OpenAIProvider, fake_server: FakeLLMServer) -> None:
    fake_server.enqueue(Reply.error(429, code="rate_limit_exceeded", headers={"Retry-After": "2"}))
    with pytest.raises(RateLimitError) as info:
        await sdk_provider.complete(make_call("gpt-4o-mini"))
    assert info.value.retry_after == 2.0
    assert info.value.model == "gpt-4o-mini"
    # The SDK's exception holds the request (its key): a redacted summary stands in for it.
    cause = info.value.__cause__
    assert isinstance(cause, RedactedCause) and cause.original_type == "openai.RateLimitError"
    assert cause.status_code == 429 and info.value.__context__ is None
    fake_server.enqueue(Reply.error(400, code="context_length_exceeded"))
    with pytest.raises(ContextWindowExceededError):
        await collect(sdk_provider, make_call("gpt-4o-mini"))
    fake_server.enqueue(Reply.text("a b c d", cut_after=1))
    with pytest.raises(ProviderConnectionError, match="connection lost"):
        await collect(sdk_provider, make_call("gpt-4o-mini"))


async def test_sdk_connection_refused(http: httpx2.AsyncClient) -> None:
    provider = openai_at(f"http://127.0.0.1:{closed_port()}/v1", http, use_sdk=True)
    with pytest.raises(ProviderConnectionError) as info:
        await provider.complete(make_call("gpt-4o-mini"))
    assert info.value.code == "connect_failed"
    cause = info.value.__cause__
    assert isinstance(cause, RedactedCause) and cause.original_type == "openai.APIConnectionError"
