"""A streamed body read straight off genrouter's transport (``raw_body``) and ended at
``[DONE]``: the same bytes and chunks as through httpx2's layers, and the connection kept."""

from __future__ import annotations

import asyncio
import gzip
import json

import httpx2
import pytest

from genrouter import AsyncClient
from genrouter._transport import body_complete, raw_body
from tests.transport_helpers import RawServer, raw_server, read_head, transport


def _event(payload: object) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _chunk(text: str | None, finish: str | None = None) -> bytes:
    delta = {} if text is None else {"content": text}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return _event(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [choice],
        }
    )


EVENTS = [_chunk("Hel"), _chunk("lo"), _chunk(None, "stop"), b"data: [DONE]\n\n"]


def _framed(piece: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(piece), piece)


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"


def sse_handler(*, end_after_s: float = 0.0, coded: bool = False):  # type: ignore[no-untyped-def]
    """Answer every request with EVENTS as a chunked SSE body; the closing ``0`` chunk goes in
    the same write, or *end_after_s* later; *coded*: the whole body gzip-encoded."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: RawServer) -> None:
        while head := await read_head(r):
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            s.requests.append(head + await r.readexactly(length))
            if coded:
                body = gzip.compress(b"".join(EVENTS))
                w.write(HEAD + b"Content-Encoding: gzip\r\n\r\n" + _framed(body))
            else:
                w.write(HEAD + b"\r\n" + b"".join(_framed(e) for e in EVENTS))
            if end_after_s:
                await w.drain()
                await asyncio.sleep(end_after_s)
            w.write(b"0\r\n\r\n")
            await w.drain()

    return handler


async def test_raw_body_gives_the_bytes_aiter_bytes_gives_and_keeps_the_connection() -> None:
    async with raw_server(sse_handler()) as server:
        t = transport()
        async with httpx2.AsyncClient(transport=t) as client:
            bodies = []
            for straight in (True, False):
                request = client.build_request("POST", server.url, content=b"{}")
                response = await t.handle_async_request(request)
                pieces = raw_body(response) if straight else response.aiter_bytes()
                assert pieces is not None
                bodies.append(b"".join([p async for p in pieces]))
                await response.aclose()
            assert bodies[0] == bodies[1] == b"".join(EVENTS)
        assert server.accepted == 1


async def test_raw_body_is_none_where_it_would_differ_or_cannot_read() -> None:
    async with raw_server(sse_handler(coded=True)) as server:
        t = transport()
        async with httpx2.AsyncClient(transport=t) as client:
            request = client.build_request("POST", server.url, content=b"{}")
            response = await t.handle_async_request(request)
            assert raw_body(response) is None  # gzip: httpx2 decodes it
            await response.aclose()
            async with client.stream("POST", server.url, content=b"{}") as wrapped:
                assert raw_body(wrapped) is None  # httpx2's client wraps the stream
                assert not body_complete(wrapped)  # unknown: the caller drains
    async with raw_server(sse_handler()) as server:
        t = transport()
        async with httpx2.AsyncClient(transport=t) as client:
            request = client.build_request("POST", server.url, content=b"{}")
            response = await t.handle_async_request(request)
            first = raw_body(response)
            assert first is not None
            assert raw_body(response) is None  # one reader only, as aiter_raw() enforces
            await response.aclose()


async def test_closing_the_body_unread_after_the_message_arrived_keeps_the_connection() -> None:
    async with raw_server(sse_handler()) as server:
        t = transport()
        async with httpx2.AsyncClient(transport=t) as client:
            for _ in range(2):
                request = client.build_request("POST", server.url, content=b"{}")
                response = await t.handle_async_request(request)
                pieces = raw_body(response)
                assert pieces is not None
                async for _piece in pieces:
                    while not body_complete(response):
                        await asyncio.sleep(0.01)
                    break
                await pieces.aclose()
                await response.aclose()
                assert t._idle_count == 1
        assert server.accepted == 1


@pytest.mark.parametrize(
    ("end_after_s", "coded"),
    [(0.0, False), (0.1, False), (0.0, True)],
    ids=["end-in-the-same-write", "end-after-done", "gzip"],
)
async def test_streams_end_at_done_and_reuse_the_connection(
    end_after_s: float, coded: bool
) -> None:
    async with raw_server(sse_handler(end_after_s=end_after_s, coded=coded)) as server:
        config = {
            "providers": {"up": {"type": "openai_compatible", "base_url": server.url + "/v1"}},
            "models": {"up/m": {}},
        }
        async with AsyncClient(config=config, env={}) as client:
            for _ in range(3):
                stream = await client.chat.completions.create(
                    model="up/m", messages=[{"role": "user", "content": "hi"}], stream=True
                )
                texts = [c.choices[0].delta.content async for c in stream if c.choices]
                assert "".join(t or "" for t in texts) == "Hello"
                assert stream.get_final_completion().choices[0].finish_reason == "stop"
        assert len(server.requests) == 3
        # After [DONE], the body's end was read (or had already arrived): one connection.
        assert server.accepted == 1
