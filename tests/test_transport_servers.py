"""genrouter's transport in place: the clients use it, over TLS, behind env proxies, against
FakeLLMServer's faults and the real llama.cpp server; ``[pool] transport = "httpx"`` opts out."""

from __future__ import annotations

import asyncio
import re
import ssl
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest

from genrouter import AsyncClient, Client
from genrouter._transport import AsyncioHTTP1Transport
from genrouter._transport_choice import transport_options
from genrouter.errors import (
    AllCandidatesFailedError,
    ConfigError,
    GenRouterError,
    ProviderConnectionError,
    ProviderTimeoutError,
    RateLimitError,
    StreamInterruptedError,
)
from genrouter.testing import FakeLLMServer, Reply
from tests.real_servers import LlamaServer
from tests.transport_helpers import RawServer, ok, raw_server, self_signed_cert, serve_keepalive

LIMITS = httpx2.Limits(max_connections=10, max_keepalive_connections=5, keepalive_expiry=5)


def fake_config(server: FakeLLMServer, **pool: Any) -> dict[str, Any]:
    return {
        "providers": {"fake": {"type": "openai_compatible", "base_url": server.openai_base_url}},
        "models": {"fake/m": {"context_window": 8000}},
        "routes": {"default": {"candidates": ["fake/m"], "retry": {"attempts": 1}}},
        "pool": pool,
    }


def main_transport(client: AsyncClient) -> httpx2.AsyncBaseTransport:
    return client._build_http()._transport


# -- the clients use it ------------------------------------------------------------------------


async def test_async_client_answers_and_streams_through_it() -> None:
    async with FakeLLMServer() as server, AsyncClient(fake_config(server), env={}) as client:
        assert isinstance(main_transport(client), AsyncioHTTP1Transport)
        server.enqueue(Reply.text("plain answer"), Reply.text("streamed answer here"))
        response = await client.chat.completions.create(
            model="fake/m", messages=[{"role": "user", "content": "hi"}]
        )
        assert response.choices[0].message.content == "plain answer"
        stream = await client.chat.completions.create(
            model="fake/m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = ""
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
        assert text == "streamed answer here"
        await server.wait_for_connections(1)
        assert server.connections_open == 1  # one kept-alive connection served both


def test_sync_client_uses_it() -> None:
    with FakeLLMServer() as server:
        server.enqueue(Reply.text("sync answer"))
        with Client(fake_config(server), env={}) as client:
            response = client.chat.completions.create(
                model="fake/m", messages=[{"role": "user", "content": "hi"}]
            )
            assert response.choices[0].message.content == "sync answer"
            assert isinstance(client._async._http._transport, AsyncioHTTP1Transport)  # type: ignore[union-attr]


async def test_pool_transport_httpx_is_httpx2s_own() -> None:
    async with FakeLLMServer() as server:
        async with AsyncClient(fake_config(server, transport="httpx"), env={}) as client:
            assert isinstance(main_transport(client), httpx2.AsyncHTTPTransport)
            server.enqueue(Reply.text("via httpcore"))
            response = await client.chat.completions.create(
                model="fake/m", messages=[{"role": "user", "content": "hi"}]
            )
            assert response.choices[0].message.content == "via httpcore"
        with pytest.raises(ConfigError, match="transport"):
            AsyncClient(fake_config(server, transport="aiohttp"), env={})


def test_without_httptools_the_pool_falls_back_to_httpx2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httptools", None)  # import httptools -> ImportError
    assert transport_options("genrouter", LIMITS) == {}
    assert transport_options("httpx", LIMITS) == {}


# -- FakeLLMServer's faults through genrouter's error mapping ----------------------------------


async def test_faults_map_to_the_same_typed_errors() -> None:
    async with FakeLLMServer() as server, AsyncClient(fake_config(server), env={}) as client:
        messages: list[Any] = [{"role": "user", "content": "hi"}]
        server.enqueue(Reply(content="a b c d e f", cut_after=2))
        stream = await client.chat.completions.create(
            model="fake/m", messages=messages, stream=True
        )
        with pytest.raises(GenRouterError) as caught:
            async for _ in stream:
                pass
        assert isinstance(_only(caught.value), ProviderConnectionError | StreamInterruptedError)

        server.enqueue(Reply(content="slow but fine", delay_between_chunks_s=0.05))
        stream = await client.chat.completions.create(
            model="fake/m", messages=messages, stream=True
        )
        text = ""
        async for chunk in stream:
            text += chunk.choices[0].delta.content or "" if chunk.choices else ""
        assert text == "slow but fine"

        server.enqueue(Reply.error(500, message="boom"), Reply.text("recovered"))
        response = await client.chat.completions.create(model="fake/m", messages=messages)
        assert response.choices[0].message.content == "recovered"  # after one retry
        assert response.route is not None
        assert [a.status_code for a in response.route.attempts] == [500, None]

        server.enqueue(Reply.error(429, code="rate_limit_exceeded", headers={"Retry-After": "7"}))
        with pytest.raises(GenRouterError) as caught:
            await client.chat.completions.create(model="fake/m", messages=messages)
        limited = _only(caught.value)
        assert isinstance(limited, RateLimitError) and limited.retry_after == 7


async def test_a_stalled_stream_is_a_read_timeout() -> None:
    async with FakeLLMServer() as server:
        config = fake_config(server)
        config["timeout_s"] = 0.5
        async with AsyncClient(config, env={}) as client:
            server.enqueue(Reply(content="a b c", stall_after=1, stall_s=3))
            with pytest.raises(GenRouterError) as caught:
                stream = await client.chat.completions.create(
                    model="fake/m", messages=[{"role": "user", "content": "hi"}], stream=True
                )
                async for _ in stream:
                    pass
            assert isinstance(_only(caught.value), ProviderTimeoutError | StreamInterruptedError)


def _only(error: BaseException) -> BaseException:
    """The one attempt's error inside an all-candidates-failed group (or the error itself)."""
    if isinstance(error, AllCandidatesFailedError):
        (inner,) = error.exceptions
        return inner
    return error


# -- TLS -----------------------------------------------------------------------------------------


def tls_server_context(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    cert, key = self_signed_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    return context, cert


async def test_https_with_ssl_cert_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context, cert = tls_server_context(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    seen: list[str | None] = []

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        tls = w.get_extra_info("ssl_object")
        seen.append(tls.selected_alpn_protocol())
        await serve_keepalive(r, w, s, ok(b"secure"))

    async with raw_server(handler, ssl_context=context) as server:
        t = AsyncioHTTP1Transport(limits=LIMITS, trust_env=True)
        async with httpx2.AsyncClient(transport=t) as client:
            for _ in range(2):
                assert (await client.get(server.url)).text == "secure"
            localhost = server.url.replace("127.0.0.1", "localhost")  # SNI / name check
            assert (await client.get(localhost)).text == "secure"
        assert server.accepted == 2 and seen == ["http/1.1", "http/1.1"]


async def test_https_with_an_unknown_ca_is_a_connect_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    context, _ = tls_server_context(tmp_path)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await serve_keepalive(r, w, s, ok(b"secure"))

    async with raw_server(handler, ssl_context=context) as server:
        t = AsyncioHTTP1Transport(limits=LIMITS)
        async with httpx2.AsyncClient(transport=t) as client:
            with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(server.url)
            assert t._slots == 0


async def test_a_tls_handshake_that_never_ends_is_a_connect_timeout() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await r.read()  # accepts TCP, never answers the ClientHello

    async with raw_server(handler) as server:
        url = server.url.replace("http://", "https://")
        t = AsyncioHTTP1Transport(limits=LIMITS)
        timeout = httpx2.Timeout(5, connect=0.3)
        async with httpx2.AsyncClient(transport=t, timeout=timeout) as client:
            with pytest.raises(httpx2.ConnectTimeout):
                await client.get(url)
            assert t._slots == 0


async def test_cancelled_during_the_tls_handshake_frees_the_slot() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await r.read()  # never answers the ClientHello

    async with raw_server(handler) as server:
        t = AsyncioHTTP1Transport(limits=LIMITS)
        async with httpx2.AsyncClient(transport=t) as client:
            task = asyncio.create_task(client.get(server.url.replace("http://", "https://")))
            while server.accepted == 0:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert (t._slots, t._active) == (0, set())


# -- proxies from the environment ------------------------------------------------------------


async def test_env_proxies_are_mounted_as_httpx2_mounts_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def proxy(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        while head := await r.readuntil(b"\r\n\r\n"):
            s.requests.append(head)  # a forward proxy sees the absolute URL
            w.write(ok(b"from the proxy"))
            await w.drain()

    async def origin(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await serve_keepalive(r, w, s, ok(b"direct"))

    async with raw_server(proxy) as proxy_server, raw_server(origin) as origin_server:
        for name in ("ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy_server.url)
        monkeypatch.setenv("HTTPS_PROXY", proxy_server.url)  # mounted alike (not used here)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        with_ours = httpx2.AsyncClient(trust_env=True, **transport_options("genrouter", LIMITS))
        httpx2s = httpx2.AsyncClient(trust_env=True)
        async with with_ours, httpx2s:
            ours = {p.pattern: type(t) for p, t in with_ours._mounts.items()}
            theirs = {p.pattern: type(t) for p, t in httpx2s._mounts.items()}
            assert ours == theirs  # the same patterns, the same kinds of transport
            assert {"http://", "https://", "all://127.0.0.1"} <= set(ours)
            response = await with_ours.get("http://models.invalid/v1/models")
            assert response.text == "from the proxy"
            assert proxy_server.requests[0].startswith(b"GET http://models.invalid/v1/models ")
            response = await with_ours.get(origin_server.url)  # NO_PROXY: our transport
            assert response.text == "direct"
            assert isinstance(with_ours._transport, AsyncioHTTP1Transport)
            assert with_ours._transport._idle_count == 1


# -- the real llama.cpp server ---------------------------------------------------------------


@pytest.mark.slow
async def test_real_llama_server_through_it(llama_server: LlamaServer) -> None:
    config = {
        "providers": {"llama": {"type": "openai_compatible", "base_url": llama_server.base_url}},
        "models": {"llama/gemma": {"context_window": 512, "max_output_tokens": 16}},
        "routes": {"default": {"candidates": ["llama/gemma"]}},
    }
    async with AsyncClient(config, env={}) as client:
        transport = main_transport(client)
        assert isinstance(transport, AsyncioHTTP1Transport)
        messages: list[Any] = [{"role": "user", "content": "Q: What is 2+2?\nA:"}]
        response = await client.chat.completions.create(
            model="llama/gemma", messages=messages, max_tokens=8, temperature=0
        )
        assert response.usage is not None and response.usage.prompt_tokens > 0
        stream = await client.chat.completions.create(
            model="llama/gemma", messages=messages, max_tokens=8, temperature=0, stream=True
        )
        finish = [c.choices[0].finish_reason async for c in stream if c.choices]
        assert finish[-1] in ("stop", "length")
        assert transport._slots == transport._idle_count == 1  # one connection, kept alive


async def test_the_documented_escape_hatch_loads(tmp_path: Path) -> None:
    page = (Path(__file__).parents[1] / "docs" / "routing.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```toml\n(.*?)```", page, re.S) if "transport" in b]
    path = tmp_path / "genrouter.toml"
    path.write_text(block, encoding="utf-8")
    async with AsyncClient(path, env={}) as client:
        assert isinstance(main_transport(client), httpx2.AsyncHTTPTransport)


def test_a_second_event_loop_gets_httpx2s_transport() -> None:
    """The pool belongs to the first loop; a later ``asyncio.run`` goes through httpx2's.

    (With httpx2's default transport alone, the second ``asyncio.run`` fails: "Event loop is
    closed". No idle connection is kept here: one left on a closed loop can only be shut down,
    and its transport warns when collected.)
    """

    async def ask(client: AsyncClient) -> str | None:
        response = await client.chat.completions.create(
            model="fake/m", messages=[{"role": "user", "content": "again"}]
        )
        return response.choices[0].message.content

    async def ask_and_close(client: AsyncClient) -> str | None:
        try:
            return await ask(client)
        finally:
            transport = main_transport(client)
            assert isinstance(transport, AsyncioHTTP1Transport) and transport._fallback is not None
            await client.aclose()  # also closes the first loop's idle connection

    with FakeLLMServer() as server:
        client = AsyncClient(fake_config(server, max_keepalive_connections=0), env={})
        assert asyncio.run(ask(client)) == "echo: again"
        assert asyncio.run(ask_and_close(client)) == "echo: again"
