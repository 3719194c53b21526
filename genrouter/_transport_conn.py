"""One HTTP/1.1 client connection: an asyncio Protocol fed to httptools' response parser.

Used only by :mod:`genrouter._transport`. A connection carries one request at a time. The
protocol collects what the parser reports (status, headers, body pieces, the end of the
message, the peer closing) and wakes the one task waiting on it through a single future with
a ``loop.call_later`` timer for the read timeout; no task per connection, no ``wait_for`` per
chunk. Reading pauses while more than :data:`HIGH_WATER` unread body bytes are buffered and
resumes once the reader has taken them.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import httptools
import httpx2

__all__ = ["HIGH_WATER", "Connection"]

HIGH_WATER = 256 * 1024  # unread body bytes that pause the socket
LOW_WATER = 64 * 1024  # ... and resume it once the reader is below this

_NO_BODY_STATUS = frozenset({204, 304})


class Connection(asyncio.Protocol):
    """One keep-alive connection to one origin, one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, origin: tuple[bytes, str, int]) -> None:
        self.loop = loop
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.lost = False  # the peer closed (EOF or connection_lost): never reuse
        self.discarded = False  # the pool has given up this connection's slot
        self.idle_since = 0.0
        self.on_lost_while_idle: Callable[[Connection], None] | None = None
        self._lost_exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._parser: Any = None
        self._active = False  # a request is in flight on this connection
        self.close_after = False  # the request said ``Connection: close``
        self._request: httpx2.Request | None = None
        self._reset_response()

    # -- response state -------------------------------------------------------------------

    def _reset_response(self) -> None:
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.http_version = b"HTTP/1.1"
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self._framed = False  # Content-Length or chunked: EOF before the end is an error
        self._interim = False
        self._body: deque[bytes] = deque()
        self._buffered = 0
        self._read_paused = False
        self._error: BaseException | None = None

    def begin(self, request: httpx2.Request) -> None:
        """Make ready for the response to *request* (one parser per response)."""
        self._reset_response()
        self._request = request
        self._active = True
        self.close_after = False
        self._parser = httptools.HttpResponseParser(self)

    def finish(self) -> None:
        self._active = False
        self._parser = None
        self._body.clear()
        self._buffered = 0
        if self._read_paused:  # (a complete body closed unread): the next response must flow
            self._read_paused = False
            if self.transport is not None and not self.lost:
                self.transport.resume_reading()

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None or self.complete:
            # Bytes nobody asked for (after a response, or while idle): the connection's
            # framing can no longer be trusted.
            self._mark_lost(None)
            if self.transport is not None:
                self.transport.close()
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(
                httpx2.RemoteProtocolError("unexpected protocol upgrade", request=self._request)
            )
        except httptools.HttpParserError as exc:
            self._fail(
                httpx2.RemoteProtocolError(f"malformed HTTP response: {exc}", request=self._request)
            )

    def eof_received(self) -> bool | None:
        self._mark_lost(None)
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._mark_lost(exc)
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _mark_lost(self, exc: BaseException | None) -> None:
        if self.lost:
            return
        self.lost = True
        self._lost_exc = exc
        if not self._active:
            callback, self.on_lost_while_idle = self.on_lost_while_idle, None
            if callback is not None:
                callback(self)
            return
        if self.headers_done and not self._framed and not self.complete and not self._interim:
            self.complete = True  # a body delimited by the connection closing ends here
            self.keep_alive = False
        elif not self.complete:
            request = self._request
            if exc is not None:
                self._error = httpx2.ReadError(str(exc) or type(exc).__name__, request=request)
            elif not self.headers_done:
                self._error = httpx2.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                )
            else:
                self._error = httpx2.RemoteProtocolError(
                    "peer closed connection without sending complete message body", request=request
                )
        self._wake()

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self.lost = True
        if self.transport is not None:
            self.transport.close()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:  # a second response to one request: stop here, drop the connection
            raise RuntimeError("data after the end of the response")

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.headers_done:  # after the head: a chunked body's trailers, dropped
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()
        self.status = status
        if 100 <= status < 200 and status != 101:
            self._interim = True  # 100 Continue, 103 Early Hints: skipped
            return
        self.http_version = b"HTTP/" + parser.get_http_version().encode("ascii")
        self.keep_alive = parser.should_keep_alive()
        if status in _NO_BODY_STATUS:
            self._framed = True
        else:
            for name, _ in self.headers:
                lowered = name.lower()
                if lowered == b"content-length" or lowered == b"transfer-encoding":
                    self._framed = True
                    break
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._read_paused and self.transport is not None:
            self._read_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            self.status = 0
            self.reason = b""
            self.headers = []
            return
        self.keep_alive = (
            self.keep_alive and not self.close_after and self._parser.should_keep_alive()
        )
        self.complete = True
        self._wake()

    # -- waiting, for the task that owns the request --------------------------------------

    async def wait(self, timeout: float | None, make_timeout: Callable[[], BaseException]) -> None:
        """Wait for the next thing the parser reports (or the peer closing), up to *timeout*."""
        waiter = self.loop.create_future()
        self._waiter = waiter
        timer = None
        if timeout is not None:
            timer = self.loop.call_later(timeout, _expire, waiter, make_timeout)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    async def wait_headers(self, read_timeout: float | None) -> None:
        request = self._request
        while not self.headers_done:
            if self._error is not None:
                raise self._error
            await self.wait(read_timeout, lambda: httpx2.ReadTimeout("timed out", request=request))

    def take_body(self) -> bytes | None:
        """The buffered body bytes, b"" at the end of the body, or None when nothing is buffered."""
        body = self._body
        if body:
            data = body.popleft() if len(body) == 1 else b"".join(body)
            body.clear()
            self._buffered = 0
            if self._read_paused and self.transport is not None and not self.lost:
                self._read_paused = False
                self.transport.resume_reading()
            return data
        if self.complete:
            return b""
        if self._error is not None:
            raise self._error
        return None

    async def write(self, data: bytes, write_timeout: float | None) -> None:
        transport = self.transport
        if transport is None or self.lost or transport.is_closing():
            if self._error is not None:
                raise self._error
            raise httpx2.WriteError(
                "connection closed before the request was sent", request=self._request
            )
        transport.write(data)
        if self._write_paused:
            await self._wait_drain(write_timeout)

    async def _wait_drain(self, write_timeout: float | None) -> None:
        request = self._request
        drain = self.loop.create_future()
        self._drain = drain
        timer = None
        if write_timeout is not None:
            timer = self.loop.call_later(
                write_timeout,
                _expire,
                drain,
                lambda: httpx2.WriteTimeout("timed out", request=request),
            )
        try:
            await drain
        finally:
            self._drain = None
            if timer is not None:
                timer.cancel()

    def readable(self) -> bool:
        """Whether the idle socket has bytes or EOF waiting that the loop has not delivered yet.

        Either means the connection cannot carry a new request (httpcore checks the same).
        """
        transport = self.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None or not hasattr(select, "poll"):
            return False
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))

    def close(self) -> None:
        self.lost = True
        self.on_lost_while_idle = None
        transport = self.transport
        if transport is None:
            return
        if not self.loop.is_closed():
            transport.close()
            return
        # A closed loop can no longer run the close: at least tell the peer.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _expire(future: asyncio.Future[None], make_error: Callable[[], BaseException]) -> None:
    if not future.done():
        future.set_exception(make_error())
