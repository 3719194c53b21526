"""genrouter's HTTP/1.1 transport against small raw asyncio servers: framing, pool, timeouts."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx2
import pytest

from genrouter._transport import AsyncioHTTP1Transport
from genrouter._transport_conn import HIGH_WATER, Connection
from tests.transport_helpers import (
    RawServer,
    content_length,
    ok,
    raw_server,
    read_head,
    serve_keepalive,
    transport,
    wait_until,
)


def idle(t: AsyncioHTTP1Transport) -> int:
    return t._idle_count


def slots(t: AsyncioHTTP1Transport) -> int:
    return t._slots


async def test_keep_alive_reuses_one_connection() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await serve_keepalive(r, w, s, ok(b"hello"))

    async with raw_server(handler) as server:
        t = transport()
        async with httpx2.AsyncClient(transport=t) as client:
            for _ in range(3):
                response = await client.post(server.url + "/x?q=1", content=b"abc")
                assert response.status_code == 200
                assert response.text == "hello"
                assert response.http_version == "HTTP/1.1"
            assert server.accepted == 1
            assert (slots(t), idle(t)) == (1, 1)
        assert server.requests[0].startswith(b"POST /x?q=1 HTTP/1.1\r\n")
        assert b"\r\nContent-Length: 3\r\n" in server.requests[0]
        assert server.requests[0].endswith(b"\r\n\r\nabc")


async def test_an_idle_connection_the_peer_closed_is_not_reused() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await read_head(r)
        w.write(ok(b"once"))
        await w.drain()  # then close: an idle keep-alive connection the server dropped

    async with raw_server(handler) as server:
        t = transport()
        async with httpx2.AsyncClient(transport=t) as client:
            assert (await client.get(server.url)).text == "once"
            await wait_until(lambda: idle(t) == 0)  # dropped from the pool as soon as it closed
            assert slots(t) == 0
            assert (await client.get(server.url)).text == "once"
        assert server.accepted == 2


@pytest.mark.parametrize(
    "answer",
    [
        ok(b"bye", b"Connection: close"),
        b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nbye",
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_a_response_that_ends_the_connection_is_not_kept(answer: bytes) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await serve_keepalive(r, w, s, answer)  # the server would go on: the client must not

    async with raw_server(handler) as server:
        t = transport()
        async with httpx2.AsyncClient(transport=t) as client:
            for _ in range(2):
                assert (await client.get(server.url)).text == "bye"
                assert (slots(t), idle(t)) == (0, 0)
        assert server.accepted == 2


async def test_http_1_0_keep_alive_is_honoured() -> None:
    answer = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await serve_keepalive(r, w, s, answer)

    async with raw_server(handler) as server, httpx2.AsyncClient(transport=transport()) as client:
        for _ in range(2):
            response = await client.get(server.url)
            assert (response.text, response.http_version) == ("ok", "HTTP/1.0")
        assert server.accepted == 1


async def test_a_request_saying_connection_close_closes_it() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await serve_keepalive(r, w, s, ok(b"x"))

    async with raw_server(handler) as server:
        t = transport()
        async with httpx2.AsyncClient(transport=t) as client:
            await client.get(server.url, headers={"Connection": "close"})
            assert (slots(t), idle(t)) == (0, 0)


async def test_a_body_delimited_by_the_connection_closing() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await read_head(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ")
        await w.drain()
        await asyncio.sleep(0.05)
        w.write(b"part two")
        await w.drain()

    async with raw_server(handler) as server:
        t = transport()
        async with httpx2.AsyncClient(transport=t) as client:
            assert (await client.get(server.url)).text == "part one, part two"
            assert (slots(t), idle(t)) == (0, 0)


async def test_chunked_body_with_extensions_and_trailers_then_reuse() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n"
    )

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await serve_keepalive(r, w, s, answer)

    async with raw_server(handler) as server:
        t = transport()
        async with httpx2.AsyncClient(transport=t) as client:
            for _ in range(2):
                response = await client.get(server.url)
                assert response.text == "hello world"
                assert "x-sum" not in response.headers  # trailers are not headers
            assert server.accepted == 1


async def test_a_gzip_body_is_decoded_by_httpx2() -> None:
    text = b'{"answer": "compressed"}' * 50
    answer = ok(gzip.compress(text), b"Content-Encoding: gzip")

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await serve_keepalive(r, w, s, answer)

    async with raw_server(handler) as server, httpx2.AsyncClient(transport=transport()) as client:
        response = await client.get(server.url)
        assert response.content == text


async def test_interim_1xx_responses_are_skipped() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok(
        b"final"
    )

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await serve_keepalive(r, w, s, answer)

    async with raw_server(handler) as server, httpx2.AsyncClient(transport=transport()) as client:
        for _ in range(2):
            response = await client.post(server.url, content=b"body")
            assert (response.status_code, response.text) == (200, "final")
            assert "link" not in response.headers
        assert server.accepted == 1


async def test_an_async_iterable_body_is_sent_chunked() -> None:
    received: list[bytes] = []

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        head = await read_head(r)
        assert b"transfer-encoding: chunked" in head.lower()
        received.append(await r.readuntil(b"0\r\n\r\n"))
        w.write(ok(b"got it"))
        await w.drain()

    async def pieces() -> AsyncIterator[bytes]:
        for piece in (b"one", b"", b"two-two"):
            yield piece
            await asyncio.sleep(0)

    async with raw_server(handler) as server, httpx2.AsyncClient(transport=transport()) as client:
        response = await client.post(server.url, content=pieces())
        assert response.text == "got it"
    assert received == [b"3\r\none\r\n7\r\ntwo-two\r\n0\r\n\r\n"]


async def test_a_large_body_pauses_reading_until_the_reader_catches_up() -> None:
    block = bytes(range(256)) * 4096  # 1 MiB
    total = 16

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await read_head(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(block) * total))
        for _ in range(total):
            w.write(block)
            await w.drain()

    async with raw_server(handler) as server:
        t = transport()
        async with httpx2.AsyncClient(transport=t) as client:
            async with client.stream("GET", server.url) as response:
                chunks = response.aiter_raw()
                got = len(await anext(chunks))
                (conn,) = t._active
                await wait_until(lambda: conn._read_paused)  # a slow reader: the socket pauses
                assert conn._buffered < 2 * 1024 * 1024  # bounded, not the whole 16 MiB
                async for chunk in chunks:
                    got += len(chunk)
            assert got == len(block) * total
            assert idle(t) == 1  # read to the end: kept


async def test_read_timeout_mid_body_frees_the_slot() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await read_head(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf ")
        await w.drain()
        await r.read()  # until the client closes

    async with raw_server(handler) as server:
        t = transport()
        async with httpx2.AsyncClient(transport=t, timeout=httpx2.Timeout(5, read=0.3)) as client:
            with pytest.raises(httpx2.ReadTimeout) as caught:
                await client.get(server.url)
            assert caught.value.request.url == server.url
            assert (slots(t), idle(t)) == (0, 0)
            await wait_until(lambda: server.closed_by_client == 1)


async def test_read_timeout_waiting_for_headers() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await read_head(r)
        await r.read()  # until the client closes

    async with raw_server(handler) as server:
        t = transport()
        async with httpx2.AsyncClient(transport=t, timeout=httpx2.Timeout(5, read=0.2)) as client:
            with pytest.raises(httpx2.ReadTimeout):
                await client.get(server.url)
            assert slots(t) == 0


async def test_connect_refused_is_a_connect_error() -> None:
    async with raw_server(serve_nothing) as server:
        url = server.url
    t = transport()
    async with httpx2.AsyncClient(transport=t) as client:
        with pytest.raises(httpx2.ConnectError) as caught:
            await client.get(url)
        assert caught.value.request is not None
        assert slots(t) == 0


async def serve_nothing(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
    await r.read()  # until the client closes


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"", "without sending a response"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "complete message body"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "complete message body"),
        (b"NOT HTTP AT ALL\r\n\r\n", "malformed"),
    ],
    ids=["no-response", "short-body", "cut-chunked", "garbage"],
)
async def test_a_broken_response_is_a_remote_protocol_error(answer: bytes, message: str) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await read_head(r)
        w.write(answer)
        await w.drain()

    async with raw_server(handler) as server:
        t = transport()
        async with httpx2.AsyncClient(transport=t) as client:
            with pytest.raises(httpx2.RemoteProtocolError, match=message):
                await client.get(server.url)
            assert (slots(t), idle(t)) == (0, 0)


async def test_pool_timeout_with_one_connection_then_the_slot_comes_back() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await serve_keepalive(r, w, s, ok(b"0123456789" * 1000))

    async with raw_server(handler) as server:
        t = transport(max_connections=1)
        timeout = httpx2.Timeout(5, pool=0.2)
        async with httpx2.AsyncClient(transport=t, timeout=timeout) as client:
            async with client.stream("GET", server.url) as held:
                assert held.status_code == 200
                with pytest.raises(httpx2.PoolTimeout):
                    await client.get(server.url)
            assert (slots(t), t._waiters) == (1, type(t._waiters)())
            assert (await client.get(server.url)).status_code == 200
        assert server.accepted == 1


async def test_waiters_get_the_connection_in_turn() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        while head := await read_head(r):
            await asyncio.sleep(0.02)
            w.write(ok(b"turn"))
            await w.drain()
            del head

    async with raw_server(handler) as server:
        t = transport(max_connections=1)
        async with httpx2.AsyncClient(transport=t) as client:
            answers = await asyncio.gather(*(client.get(server.url) for _ in range(5)))
            assert [a.text for a in answers] == ["turn"] * 5
            assert slots(t) == 1
        assert server.accepted == 1


async def test_a_waiter_for_another_origin_gets_the_slot() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await serve_keepalive(r, w, s, ok(b"hi"))

    async with raw_server(handler) as one, raw_server(handler) as two:
        t = transport(max_connections=1)
        async with httpx2.AsyncClient(transport=t) as client:
            await client.get(one.url)  # idle connection to one
            first, second = await asyncio.gather(client.get(two.url), client.get(one.url))
            assert (first.text, second.text) == ("hi", "hi")
            assert slots(t) == 1
        assert (one.accepted, two.accepted) == (2, 1)


async def test_keepalive_expiry_and_max_keepalive() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await serve_keepalive(r, w, s, ok(b"hi"))

    async with raw_server(handler) as server:
        t = transport(keepalive_expiry=0.1)
        async with httpx2.AsyncClient(transport=t) as client:
            await client.get(server.url)
            await asyncio.sleep(0.4)
            await client.get(server.url)  # the idle one had expired: a new connection
        assert server.accepted == 2
        t = transport(max_keepalive_connections=0)
        async with httpx2.AsyncClient(transport=t) as client:
            await client.get(server.url)
            assert (slots(t), idle(t)) == (0, 0)


async def test_cancellation_mid_body_leaves_the_pool_consistent() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await read_head(r)
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await w.drain()
        await r.read()  # until the client closes

    async with raw_server(handler) as server:
        t = transport(max_connections=1)
        async with httpx2.AsyncClient(transport=t) as client:
            for _ in range(2):  # twice: the slot of the first must have come back
                task = asyncio.create_task(client.get(server.url))
                await wait_until(lambda: any(c.headers_done and not c._body for c in t._active))
                await asyncio.sleep(0.05)  # the task is now waiting for the rest of the body
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert (slots(t), idle(t), t._active) == (0, 0, set())
            await wait_until(lambda: server.closed_by_client == 2)


async def test_cancellation_while_waiting_for_the_pool_or_headers() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await read_head(r)
        await r.read()  # until the client closes

    async with raw_server(handler) as server:
        t = transport(max_connections=1)
        async with httpx2.AsyncClient(transport=t) as client:
            holder = asyncio.create_task(client.get(server.url))  # waits for headers
            await wait_until(lambda: server.accepted == 1)
            waiter = asyncio.create_task(client.get(server.url))  # waits for the pool
            await wait_until(lambda: len(t._waiters) == 1)
            waiter.cancel()
            holder.cancel()
            await asyncio.gather(holder, waiter, return_exceptions=True)
            assert (slots(t), len(t._waiters), t._active) == (0, 0, set())


async def test_a_slot_handed_to_a_cancelled_waiter_is_not_lost() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await serve_keepalive(r, w, s, ok(b"hi"))

    async with raw_server(handler) as server:
        t = transport(max_connections=1)
        async with httpx2.AsyncClient(transport=t) as client:
            async with client.stream("GET", server.url) as held:
                waiter = asyncio.create_task(client.get(server.url))
                await wait_until(lambda: len(t._waiters) == 1)
                await held.aread()  # the body is complete: closing hands the connection over
            waiter.cancel()  # ... to a waiter cancelled before it could resume
            await asyncio.gather(waiter, return_exceptions=True)
            assert slots(t) == 1 and idle(t) + len(t._active) == 1
            assert (await client.get(server.url)).text == "hi"


async def test_early_aclose_drops_the_connection() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await read_head(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
        await w.drain()
        await r.read()  # until the client closes

    async with raw_server(handler) as server:
        t = transport()
        async with httpx2.AsyncClient(transport=t) as client:
            async with client.stream("GET", server.url) as response:
                async for _ in response.aiter_raw():
                    break
            assert (slots(t), idle(t)) == (0, 0)
            await wait_until(lambda: server.closed_by_client == 1)


async def test_head_and_other_schemes_go_to_httpx2s_transport() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        while head := await read_head(r):
            s.requests.append(head)
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n")
            await w.drain()

    async with raw_server(handler) as server:
        t = transport()
        async with httpx2.AsyncClient(transport=t) as client:
            response = await client.head(server.url)
            assert (response.status_code, response.content) == (200, b"")
            assert t._fallback is not None and slots(t) == 0
            with pytest.raises(httpx2.UnsupportedProtocol):
                await client.get("ftp://127.0.0.1/")
        assert server.requests[0].startswith(b"HEAD / HTTP/1.1")


async def test_request_headers_and_body_reach_the_server_as_sent() -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        head = await read_head(r)
        body = await r.readexactly(content_length(head))
        s.requests.append(head + body)
        w.write(ok(b"{}", b"Content-Type: application/json", b"X-Request-Id: req-1"))
        await w.drain()

    async with raw_server(handler) as server, httpx2.AsyncClient(transport=transport()) as client:
        response = await client.post(
            server.url + "/v1/chat", json={"a": 1}, headers={"Authorization": "Bearer sk-test"}
        )
        assert response.json() == {}
        assert response.headers["x-request-id"] == "req-1"
        sent = server.requests[0]
        assert b"\r\nHost: 127.0.0.1:" in sent
        assert b"\r\nAuthorization: Bearer sk-test\r\n" in sent
        assert sent.endswith(b'{"a":1}')


async def test_write_timeout_when_the_server_does_not_read() -> None:
    async with raw_server(serve_nothing_read) as server:
        t = transport()
        async with httpx2.AsyncClient(transport=t, timeout=httpx2.Timeout(5, write=0.3)) as client:
            with pytest.raises(httpx2.WriteTimeout):
                await client.post(server.url, content=b"x" * (32 * 1024 * 1024))
            assert (slots(t), idle(t)) == (0, 0)


async def serve_nothing_read(
    r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer
) -> None:
    await asyncio.sleep(10)  # neither reads nor answers; cancelled when the test ends


async def test_a_complete_body_closed_unread_leaves_a_reusable_connection() -> None:
    # Under the pause mark: however the socket splits it, the whole body arrives unread. (A
    # body over the mark arrives whole only if the read that crosses the mark also ends it,
    # which depends on the split: that case is test_a_body_complete_while_paused_resumes...)
    big = b"y" * (HIGH_WATER // 2)

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        await serve_keepalive(r, w, s, ok(big))

    async with raw_server(handler) as server:
        t = transport()
        async with httpx2.AsyncClient(transport=t, timeout=httpx2.Timeout(5)) as client:
            async with client.stream("GET", server.url):
                await wait_until(lambda: any(c.complete for c in t._active))
            assert idle(t) == 1  # everything arrived: kept
            assert (await client.get(server.url)).content == big
        assert server.accepted == 1


class _RecordingTransport(asyncio.Transport):
    """Just what a Connection asks of its transport, recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def is_closing(self) -> bool:
        return False


async def test_a_body_complete_while_paused_resumes_reading_when_closed_unread() -> None:
    conn = Connection(asyncio.get_running_loop(), (b"http", "127.0.0.1", 80))
    recorder = _RecordingTransport()
    conn.connection_made(recorder)
    conn.begin(httpx2.Request("GET", "http://127.0.0.1/"))
    big = b"y" * (HIGH_WATER + 1024)
    conn.data_received(ok(big))  # one read that crosses the pause mark and ends the body
    assert conn.complete and recorder.calls == ["pause"]
    conn.finish()  # the body closed unread: the next response on this connection must flow
    assert recorder.calls == ["pause", "resume"]
    assert conn.keep_alive and not conn.lost


def test_an_idle_connection_with_an_unseen_eof_is_not_reused() -> None:
    """The peer's FIN is in the socket but the loop has not run since: poll before reuse."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []

    def serve() -> None:
        for _ in range(2):
            sock, _ = listener.accept()
            accepted.append(sock)
            sock.recv(65536)
            sock.sendall(ok(b"hi"))

    async def scenario() -> None:
        t = transport()
        async with httpx2.AsyncClient(transport=t) as client:
            assert (await client.get(f"http://127.0.0.1:{port}/")).text == "hi"
            accepted[0].close()  # FIN sent...
            time.sleep(0.7)  # ...while the loop cannot run: no eof_received yet
            (conn,) = t._idle[(b"http", "127.0.0.1", port)]
            assert not conn.lost
            assert (await client.get(f"http://127.0.0.1:{port}/")).text == "hi"
            assert conn.lost and idle(t) == 1

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        asyncio.run(scenario())
    finally:
        server.join(5)
        for sock in accepted:
            sock.close()
        listener.close()
    assert len(accepted) == 2


@pytest.mark.parametrize(
    "headers",
    [{"X-A": "a\r\nX-Injected: 1"}, {"X-A": "a\nb"}, {"X-A": "a\rb"}, {"X-A": "a\0b"}],
    ids=["crlf", "lf", "cr", "nul"],
)
async def test_a_header_that_would_split_the_request_is_refused(headers: dict[str, str]) -> None:
    async with raw_server(serve_nothing) as server:
        t = transport()
        async with httpx2.AsyncClient(transport=t) as client:
            with pytest.raises(httpx2.LocalProtocolError, match="illegal character"):
                await client.get(server.url, headers=headers)
            assert slots(t) == 0
        assert server.accepted == 0


UVLOOP_CASES = [
    test_keep_alive_reuses_one_connection,
    test_an_idle_connection_the_peer_closed_is_not_reused,
    test_a_body_delimited_by_the_connection_closing,
    test_chunked_body_with_extensions_and_trailers_then_reuse,
    test_a_large_body_pauses_reading_until_the_reader_catches_up,
    test_read_timeout_mid_body_frees_the_slot,
    test_connect_refused_is_a_connect_error,
    test_pool_timeout_with_one_connection_then_the_slot_comes_back,
    test_cancellation_mid_body_leaves_the_pool_consistent,
    test_early_aclose_drops_the_connection,
    test_write_timeout_when_the_server_does_not_read,
    test_a_complete_body_closed_unread_leaves_a_reusable_connection,
]


@pytest.mark.parametrize("case", UVLOOP_CASES, ids=[c.__name__[5:] for c in UVLOOP_CASES])
def test_the_same_under_uvloop(case: Callable[[], Awaitable[None]]) -> None:
    """uvloop's transports differ from asyncio's (they are not asyncio.Transport subclasses)."""
    uvloop = pytest.importorskip("uvloop")
    uvloop.run(case())
