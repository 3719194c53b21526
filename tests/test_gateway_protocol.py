"""The gateway's uvicorn protocol writes each response's head together with its body."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest

from genrouter.server._protocol import _HeadWithBody
from genrouter.server.run import http_protocol
from genrouter.testing import FakeLLMServer, Reply
from tests.gateway_helpers import FAKE_PROVIDER_KEY, in_process_gateway, two_upstreams

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n"


class RecordingTransport:
    """Just enough of a transport to see what is written, and when."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "a write after close"
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


def wrapped() -> tuple[_HeadWithBody, RecordingTransport]:
    inner = RecordingTransport()
    return _HeadWithBody(inner, asyncio.get_running_loop()), inner  # type: ignore[arg-type]


async def test_a_head_goes_out_with_the_body_that_follows_it() -> None:
    transport, inner = wrapped()
    transport.write(HEAD)
    assert inner.writes == []  # held
    assert transport.get_write_buffer_size() == 7 + len(HEAD)
    transport.write(b'{"ok": true}')
    assert inner.writes == [HEAD + b'{"ok": true}']
    transport.write(b"more")  # not a head: straight through
    assert inner.writes[-1] == b"more"
    await asyncio.sleep(0)  # the scheduled release finds nothing held
    assert len(inner.writes) == 2


async def test_a_head_with_no_write_after_it_goes_out_at_the_end_of_the_turn() -> None:
    transport, inner = wrapped()
    transport.write(HEAD)
    await asyncio.sleep(0)
    assert inner.writes == [HEAD]
    transport.write(b"later")
    assert inner.writes == [HEAD, b"later"]


async def test_close_writes_a_held_head_first_and_abort_drops_it() -> None:
    transport, inner = wrapped()
    transport.write(HEAD)
    transport.close()
    assert (inner.writes, inner.closed) == ([HEAD], True)
    await asyncio.sleep(0)
    assert inner.writes == [HEAD]  # written once
    transport, inner = wrapped()
    transport.write(HEAD)
    transport.abort()
    await asyncio.sleep(0)
    assert (inner.writes, inner.aborted) == ([], True)


async def test_everything_else_is_the_transports_own() -> None:
    transport, inner = wrapped()
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)
    transport.writelines([b"a", b"b"])
    assert inner.writes == [b"ab"]


def test_the_gateway_runs_on_it() -> None:
    assert http_protocol() == "genrouter.server._protocol:HeadWithBodyProtocol"


def _exchange(port: int, request: bytes, until: bytes) -> list[bytes]:
    """Send *request*, read until *until* has arrived; the pieces each recv() returned."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        pieces: list[bytes] = []
        while until not in b"".join(pieces):
            piece = sock.recv(65536)
            if not piece:
                break
            pieces.append(piece)
        return pieces


@pytest.mark.parametrize("stream", [False, True], ids=["completion", "stream"])
def test_answers_arrive_whole_over_a_real_socket(stream: bool) -> None:
    with FakeLLMServer() as first, FakeLLMServer() as second:
        first.enqueue(Reply.text("Hello there"))
        with in_process_gateway(two_upstreams(first.base_url, second.base_url)) as gateway:
            port = int(gateway.base_url.split(":")[-1].split("/")[0])
            body = json.dumps(
                {
                    "model": "default",
                    "messages": [{"role": "user", "content": "hi"}],
                    "stream": stream,
                }
            ).encode()
            request = (
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                b"\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
            )
            until = b"data: [DONE]\n\n\r\n0\r\n\r\n" if stream else b"Hello there"
            pieces = _exchange(port, request, until)
    answer = b"".join(pieces)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert until in answer
    _head, _, rest = pieces[0].partition(b"\r\n\r\n")
    assert rest, "the head arrived without any of the body"
    assert FAKE_PROVIDER_KEY.encode() not in answer
