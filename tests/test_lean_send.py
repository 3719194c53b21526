"""The provider's send path below httpx2's client layer (providers/_direct.py).

Against small raw servers on 127.0.0.1: the bytes on the wire are those httpx2's own
``build_request`` + ``send`` put there, answers (gzip too) and errors come back the same, and a
proxy mount or another transport keeps httpx2's own path.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest

from genrouter import AsyncClient
from genrouter.catalog import load_builtin_catalog
from genrouter.config import ProviderConfig
from genrouter.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    ResponseFormatError,
)
from genrouter.providers._direct import DirectRoute
from genrouter.providers.base import ProviderCall
from genrouter.providers.dashscope import DashScopeProvider
from genrouter.providers.openai_compat import OpenAICompatibleProvider
from genrouter.request import build_request
from genrouter.types import ChatCompletion
from tests.transport_helpers import RawServer, content_length, ok, raw_server, read_head

CATALOG = load_builtin_catalog()
KEY = "sk-test-lean-0123456789"
COMPLETION = {
    "id": "c1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
}
CHUNKS = [
    {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
    }
    for word in ("a", "b")
]
SSE = b"".join(b"data: %b\r\n\r\n" % json.dumps(c).encode() for c in CHUNKS) + b"data: [DONE]\n\n"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def call_with(timeout: float | None = None, **params: Any) -> ProviderCall:
    messages = [{"role": "user", "content": "hi"}]
    request = build_request({"model": "gpt-4o-mini", "messages": messages, **params})
    return ProviderCall(request, CATALOG.get("gpt-4o-mini"), timeout=timeout)


@asynccontextmanager
async def pool(kind: str = "genrouter") -> AsyncIterator[httpx2.AsyncClient]:
    """The pool AsyncClient builds itself (``_build_http``), with ``[pool] transport``."""
    client = AsyncClient({"pool": {"transport": kind}}, env={})
    try:
        yield client._http_client()
    finally:
        await client.aclose()


def provider(
    url: str,
    http: httpx2.AsyncClient,
    cls: type[OpenAICompatibleProvider] = OpenAICompatibleProvider,
) -> OpenAICompatibleProvider:
    config = ProviderConfig(type="openai_compatible", base_url=url + "/v1", api_key_env="LEAN_KEY")
    return cls("lean", config, http=http, env={"LEAN_KEY": KEY})


def forbid_client_send(http: httpx2.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(*args: Any, **kwargs: Any) -> httpx2.Response:
        raise AssertionError("httpx2's own send was used")

    monkeypatch.setattr(http, "send", refuse)


def answering(*answers: bytes) -> Callable[..., Awaitable[None]]:
    """A keep-alive handler that records each request and sends the next answer."""
    queue = list(answers)

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        while head := await read_head(reader):
            body = await reader.readexactly(content_length(head))
            server.requests.append(head + body)
            writer.write(queue.pop(0))
            await writer.drain()

    return handler


def sse_answer() -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%b" % (
        len(SSE),
        SSE,
    )


def json_answer() -> bytes:
    return ok(json.dumps(COMPLETION).encode(), b"Content-Type: application/json")


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("cls", [OpenAICompatibleProvider, DashScopeProvider])
async def test_the_bytes_on_the_wire_are_httpx2s(
    stream: bool, cls: type[OpenAICompatibleProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = sse_answer() if stream else json_answer()
    extras: dict[str, Any] = {
        "extra_headers": {"X-Trace": "t-1", "user-agent": "mine/1.0", "Accept": "application/json"},
        "extra_query": {"api-version": "2025-01-01", "q": "a b"},
    }
    async with raw_server(answering(*[answer] * 4)) as server, pool() as http:
        lean = provider(server.url, http, cls)
        plain = provider(server.url, http, cls)
        plain._direct = None  # httpx2's own build_request + send
        params: dict[str, Any]
        for params in ({}, extras):
            for target in (lean, plain):
                with monkeypatch.context() as patch:
                    if target is lean:
                        forbid_client_send(http, patch)
                    if stream:
                        chunks = [c async for c in target.stream(call_with(**params))]
                        assert [c.choices[0].delta.content for c in chunks] == ["a", "b"]
                    else:
                        answer_ = await target.complete(call_with(**params))
                        assert answer_.choices[0].message.content == "hi"
        assert isinstance(lean._direct, DirectRoute)
    lean_bare, plain_bare, lean_extra, plain_extra = server.requests
    assert lean_bare == plain_bare
    assert lean_extra == plain_extra
    assert b"\r\nX-Trace: t-1\r\n" in lean_extra and b"user-agent: mine/1.0" in lean_extra
    assert b"api-version=2025-01-01&q=a+b" in lean_extra.split(b"\r\n", 1)[0]
    assert server.accepted == 1  # one kept-alive connection for all four


async def test_a_gzip_body_is_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    packed = gzip.compress(json.dumps(COMPLETION).encode())
    answer = ok(packed, b"Content-Type: application/json", b"Content-Encoding: gzip")
    async with raw_server(answering(answer)) as server, pool() as http:
        forbid_client_send(http, monkeypatch)
        result = await provider(server.url, http).complete(call_with())
    assert isinstance(result, ChatCompletion)
    assert result.choices[0].message.content == "hi"


async def test_a_cookie_set_by_a_response_is_kept_and_sent_as_httpx2_does() -> None:
    answer = ok(json.dumps(COMPLETION).encode(), b"Set-Cookie: session=s1; Path=/")
    async with raw_server(answering(answer, json_answer())) as server, pool() as http:
        target = provider(server.url, http)
        await target.complete(call_with())
        assert http.cookies.get("session") == "s1"
        await target.complete(call_with())  # the jar is not empty: httpx2's path sends it
    assert b"\r\nCookie: session=s1\r\n" in server.requests[1]


def summary(error: ProviderError) -> tuple[Any, ...]:
    return (
        type(error),
        error.code,
        error.status_code,
        error.retry_after,
        str(error),
        type(error.__cause__),
    )


async def error_of(target: OpenAICompatibleProvider, stream: bool, timeout: float | None) -> Any:
    with pytest.raises(ProviderError) as caught:
        if stream:
            async for _ in target.stream(call_with(timeout)):
                pass
        else:
            await target.complete(call_with(timeout))
    return summary(caught.value)


async def never_answer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
) -> None:
    await read_head(reader)
    await asyncio.sleep(30)


STATUS_ANSWERS = {
    "429": b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Type: application/json\r\n"
    b'Content-Length: 58\r\n\r\n{"error": {"message": "slow down", "type": "rate_limit"}}\n',
    "500": b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops\n",
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("status", sorted(STATUS_ANSWERS))
async def test_status_errors_map_as_on_httpx2s_path(
    status: str, stream: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = STATUS_ANSWERS[status]
    async with raw_server(answering(answer, answer)) as server, pool() as http:
        lean, plain = provider(server.url, http), provider(server.url, http)
        plain._direct = None
        with monkeypatch.context() as patch:
            forbid_client_send(http, patch)
            got = await error_of(lean, stream, None)
        expected = await error_of(plain, stream, None)
    assert got == expected
    assert got[2] == int(status)
    if status == "429":
        assert got[3] == 7.0


@pytest.mark.parametrize("stream", [False, True])
async def test_refused_and_timed_out_map_as_on_httpx2s_path(
    stream: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    async with raw_server(never_answer) as server, pool() as http:
        for url, timeout in ((closed_url, None), (server.url, 0.2)):
            lean, plain = provider(url, http), provider(url, http)
            plain._direct = None
            with monkeypatch.context() as patch:
                forbid_client_send(http, patch)
                got = await error_of(lean, stream, timeout)
            expected = await error_of(plain, stream, timeout)
            assert got == expected
            kind = ProviderConnectionError if timeout is None else ProviderTimeoutError
            assert issubclass(got[0], kind)


async def proxy_handler(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
) -> None:
    """A forward proxy that answers itself (it records the absolute-form request line)."""
    while head := await read_head(reader):
        server.requests.append(head + await reader.readexactly(content_length(head)))
        writer.write(json_answer())
        await writer.drain()


async def test_an_environment_proxy_keeps_httpx2s_path(monkeypatch: pytest.MonkeyPatch) -> None:
    async with raw_server(proxy_handler) as proxy, raw_server(answering(json_answer())) as up:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        async with pool() as http:
            target = provider(up.url, http)
            await target.complete(call_with())
            assert target._direct is None
    assert not up.requests
    assert proxy.requests[0].startswith(b"POST " + up.url.encode() + b"/v1/chat/completions ")


async def test_no_proxy_for_the_host_keeps_httpx2s_path(monkeypatch: pytest.MonkeyPatch) -> None:
    async with raw_server(proxy_handler) as proxy, raw_server(answering(json_answer())) as up:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with pool() as http:
            target = provider(up.url, http)
            await target.complete(call_with())
            assert target._direct is None
    assert not proxy.requests
    assert up.requests[0].startswith(b"POST /v1/chat/completions ")


async def test_httpx2s_own_transport_keeps_httpx2s_path() -> None:
    async with raw_server(answering(json_answer())) as server, pool("httpx") as http:
        target = provider(server.url, http)
        result = await target.complete(call_with())
        assert target._direct is None
    assert result.choices[0].message.content == "hi"


async def test_a_caller_framing_header_is_sent_as_httpx2_sends_it() -> None:
    answers = [json_answer(), json_answer()]
    async with raw_server(answering(*answers)) as server, pool() as http:
        lean, plain = provider(server.url, http), provider(server.url, http)
        plain._direct = None
        for target in (lean, plain):
            await target.complete(call_with(extra_headers={"Host": "example.test"}))
    assert server.requests[0] == server.requests[1]
    assert server.requests[0].lower().count(b"\r\nhost: ") == 1
    assert b"\r\nHost: example.test\r\n" in server.requests[0]


async def test_a_pool_header_or_event_hook_added_later_takes_httpx2s_path() -> None:
    seen: list[httpx2.Request] = []

    async def hook(request: httpx2.Request) -> None:
        seen.append(request)

    answers = [json_answer()] * 3
    async with raw_server(answering(*answers)) as server, pool() as http:
        target = provider(server.url, http)
        await target.complete(call_with())
        assert isinstance(target._direct, DirectRoute)
        http.headers["X-Pool"] = "p1"
        await target.complete(call_with())
        del http.headers["X-Pool"]
        http.event_hooks["request"].append(hook)
        await target.complete(call_with())
    assert b"X-Pool" not in server.requests[0]
    assert b"\r\nX-Pool: p1\r\n" in server.requests[1]
    assert len(seen) == 1 and b"X-Pool" not in server.requests[2]


def cut_body(part: bytes = b'{"id": "c1", "obj') -> Callable[..., Awaitable[None]]:
    """Announces a longer body than it sends, then closes the connection."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        head = await read_head(reader)
        server.requests.append(head + await reader.readexactly(content_length(head)))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + part)
        await writer.drain()
        writer.close()

    return handler


async def test_a_plain_body_read_ends_as_httpx2s_aread() -> None:
    """The direct read of a body without Content-Encoding leaves the response as aread does."""
    body = json.dumps(COMPLETION).encode()
    async with raw_server(answering(*[json_answer()] * 3)) as server, pool() as http:
        target = provider(server.url, http)
        url = httpx2.URL(server.url + "/v1/chat/completions")
        route = DirectRoute.for_pool(http, url)
        assert route is not None
        timeout = httpx2.Timeout(5.0).as_dict()
        built = route.build(url, {"Content-Type": "application/json"}, b"{}", None, timeout)
        assert built is not None
        lean = await route.send(built, stream=False)
        plain = await http.send(http.build_request("POST", url, content=b"{}"))
        for response in (lean, plain):
            assert response.content == body
            assert response.is_stream_consumed and response.is_closed
            assert response.num_bytes_downloaded == len(body)
            assert response.request is not None
        assert lean.json() == plain.json() == COMPLETION
        await target.complete(call_with())
    assert server.accepted == 1  # the connection went back to the pool after each read


async def test_a_header_one_request_adds_does_not_reach_the_next() -> None:
    """The request head is built once per key and copied: DashScope's per-request header
    (``X-DashScope-OssResourceResolve`` for ``oss://`` media) stays on its own request."""
    image = {"type": "image_url", "image_url": {"url": "oss://bucket/cat.png"}}
    with_oss = [{"role": "user", "content": [{"type": "text", "text": "what?"}, image]}]
    async with raw_server(answering(*[json_answer()] * 3)) as server, pool() as http:
        target = provider(server.url, http, DashScopeProvider)
        await target.complete(call_with())
        await target.complete(call_with(messages=with_oss))
        await target.complete(call_with())
        assert isinstance(target._direct, DirectRoute)
    header = b"\r\nX-DashScope-OssResourceResolve: enable\r\n"
    first, second, third = server.requests
    assert header not in first and header in second and header not in third
    assert first.split(b"\r\n\r\n")[0] == third.split(b"\r\n\r\n")[0]


def _not_gzip() -> Any:
    answer = ok(b"not gzip at all", b"Content-Encoding: gzip")
    return answering(answer, answer)


@pytest.mark.parametrize(
    ("handler", "kind"),
    [(_not_gzip, ResponseFormatError), (cut_body, ProviderConnectionError)],
    ids=["claims-gzip", "cut-short"],
)
async def test_a_bad_body_fails_as_on_httpx2s_path(
    monkeypatch: pytest.MonkeyPatch, handler: Callable[[], Any], kind: type[Exception]
) -> None:
    async with raw_server(handler()) as server, pool() as http:
        lean, plain = provider(server.url, http), provider(server.url, http)
        plain._direct = None
        with monkeypatch.context() as patch:
            forbid_client_send(http, patch)
            got = await error_of(lean, False, None)
        assert got == await error_of(plain, False, None)
    assert issubclass(got[0], kind)
