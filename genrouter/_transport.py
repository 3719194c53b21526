"""genrouter's HTTP/1.1 transport: httpx2's client layer over asyncio Protocols and httptools.

httpx2's default transport (httpcore2 + h11 + anyio) spends more CPU per request than all of
genrouter's own work (docs/benchmarks.md, "HTTP transport"). :class:`AsyncioHTTP1Transport`
keeps httpx2's whole client layer above the transport seam (``Request``/``Response``, auth,
redirects, content-encoding, event hooks, exception types) and does the I/O itself:

- a keep-alive pool per origin ``(scheme, host, port)`` with :class:`httpx2.Limits`
  semantics: at most ``max_connections`` open or opening, at most
  ``max_keepalive_connections`` idle, an idle connection closed after ``keepalive_expiry``;
  a connection whose peer closed is never reused; a response not read to its end,
  ``Connection: close`` or HTTP/1.0 without keep-alive closes its connection;
- the request's ``timeout`` extension (connect, read, write, pool) raising
  :class:`httpx2.ConnectTimeout`, ``ReadTimeout``, ``WriteTimeout``, ``PoolTimeout``; failures as
  ``ConnectError``, ``ReadError``, ``WriteError``, ``RemoteProtocolError``;
- TLS through the context httpx2 builds by default (:func:`httpx2.create_ssl_context`: verify,
  ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` with ``trust_env``), built once off the event loop;
- request bodies as bytes (``Content-Length``) or async iterables (chunked); response bodies
  framed by ``Content-Length``, chunked or the connection closing, streamed with flow control.

Anything else (a non-http(s) scheme, ``HEAD``, no running asyncio loop, a second event loop)
goes to httpx2's own :class:`httpx2.AsyncHTTPTransport`, built on first need. Proxies from the
environment are mounted by :func:`build_mounts` as httpx2 would mount them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
import sys
import time
from collections import deque
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import httpx2

from genrouter._transport_conn import Connection

__all__ = ["AsyncioHTTP1Transport", "body_complete", "build_mounts", "raw_body"]

Origin = tuple[bytes, str, int]
_DEFAULT_PORTS = {b"http": 80, b"https": 443}
_PRUNE_EVERY_S = 1.0
# An idle connection older than this is polled before reuse: the peer's FIN may be in the
# socket before the loop has run its callbacks (a busy loop). Hot connections skip the syscall.
_CHECK_IDLE_S = 0.5


class AsyncioHTTP1Transport(httpx2.AsyncBaseTransport):
    """An HTTP/1.1 connection pool on asyncio Protocols (see the module docstring)."""

    def __init__(
        self,
        *,
        limits: httpx2.Limits,
        verify: ssl.SSLContext | bool = True,
        trust_env: bool = True,
    ) -> None:
        self._limits = limits
        self._verify = verify
        self._trust_env = trust_env
        # None in httpx2.Limits means "no limit".
        self._max_connections: int = limits.max_connections or sys.maxsize
        idle = limits.max_keepalive_connections
        self._max_idle: int = sys.maxsize if idle is None else idle
        expiry = limits.keepalive_expiry
        self._expiry: float = math.inf if expiry is None else expiry
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._ssl_building: asyncio.Future[ssl.SSLContext] | None = None
        self._fallback: httpx2.AsyncHTTPTransport | None = None
        self._idle: dict[Origin, list[Connection]] = {}
        self._idle_count = 0
        self._slots = 0  # connections open or opening: never above max_connections
        self._waiters: deque[tuple[Origin, asyncio.Future[Connection | None]]] = deque()
        self._active: set[Connection] = set()
        self._next_prune = 0.0
        self._closed = False

    # -- the transport seam ---------------------------------------------------------------

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        scheme = url.raw_scheme
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # another async library (trio): httpx2's transport handles it
            loop = None
        if loop is None or scheme not in _DEFAULT_PORTS or request.method in ("HEAD", "CONNECT"):
            return await self._fallback_transport().handle_async_request(request)
        if self._loop is not loop:
            if self._loop is not None:  # the pool belongs to the first loop that used it
                return await self._fallback_transport().handle_async_request(request)
            self._loop = loop
        if self._closed:
            raise RuntimeError("the transport has been closed")
        origin: Origin = (scheme, url.raw_host.decode("ascii"), url.port or _DEFAULT_PORTS[scheme])
        timeouts: Mapping[str, float | None] = request.extensions.get("timeout", {})
        head, close = _request_head(request)
        conn = await self._acquire(origin, request, timeouts)
        try:
            conn.begin(request)
            conn.close_after = close
            await _send_request(conn, request, head, timeouts.get("write"))
            await conn.wait_headers(timeouts.get("read"))
        except BaseException:
            conn.finish()
            self._discard(conn)
            raise
        return httpx2.Response(
            status_code=conn.status,
            headers=conn.headers,
            stream=_ResponseStream(self, conn, request, timeouts.get("read")),
            extensions={"http_version": conn.http_version, "reason_phrase": conn.reason},
        )

    async def aclose(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.discarded = True
                conn.close()
        self._idle.clear()
        self._idle_count = 0
        for conn in list(self._active):
            conn.close()
        while self._waiters:
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(RuntimeError("the transport has been closed"))
                waiter.exception()  # retrieved: nobody may be left to await it
        if self._fallback is not None:
            await self._fallback.aclose()

    def _fallback_transport(self) -> httpx2.AsyncHTTPTransport:
        if self._fallback is None:
            self._fallback = httpx2.AsyncHTTPTransport(
                verify=self._verify, trust_env=self._trust_env, limits=self._limits
            )
        return self._fallback

    # -- the pool ---------------------------------------------------------------------------

    async def _acquire(
        self, origin: Origin, request: httpx2.Request, timeouts: Mapping[str, float | None]
    ) -> Connection:
        now = time.monotonic()
        if now >= self._next_prune:
            self._prune(now)
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            self._idle_count -= 1
            conn.on_lost_while_idle = None
            idle_for = now - conn.idle_since
            if (
                conn.lost
                or idle_for > self._expiry
                or (idle_for > _CHECK_IDLE_S and conn.readable())
            ):
                self._discard(conn)
                continue
            self._active.add(conn)
            return conn
        if self._slots < self._max_connections:
            self._slots += 1
        elif self._idle_count:
            self._evict_oldest_idle()  # its slot passes to this request
        else:
            handed = await self._wait_for_slot(origin, request, timeouts.get("pool"))
            if handed is not None:
                if not handed.lost:
                    self._active.add(handed)
                    return handed
                self._active.discard(handed)
                handed.discarded = True  # dead on arrival: keep its slot for a new connection
                handed.close()
        try:
            conn = await self._connect(origin, request, timeouts.get("connect"))
        except BaseException:
            self._free_slot()
            raise
        self._active.add(conn)
        return conn

    async def _wait_for_slot(
        self, origin: Origin, request: httpx2.Request, timeout: float | None
    ) -> Connection | None:
        """Wait until a slot (None) or an idle connection to *origin* is handed over."""
        assert self._loop is not None
        waiter: asyncio.Future[Connection | None] = self._loop.create_future()
        entry = (origin, waiter)
        self._waiters.append(entry)
        timer = None
        if timeout is not None:
            timer = self._loop.call_later(timeout, _pool_timeout, waiter, request)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                handed = waiter.result()  # handed over, then cancelled before resuming: give back
                if handed is None:
                    self._free_slot()
                else:
                    self._release(handed, reusable=True)
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(entry)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _release(self, conn: Connection, *, reusable: bool) -> None:
        """A request is done with *conn*: keep it idle, hand it on, or close it."""
        self._active.discard(conn)
        if not reusable or conn.lost or self._closed:
            self._discard(conn)
            return
        while self._waiters:
            origin, waiter = self._waiters.popleft()
            if waiter.done():
                continue
            if origin == conn.origin:
                self._active.add(conn)
                waiter.set_result(conn)
            else:  # the waiter wants another origin: close this one, hand over its slot
                conn.discarded = True
                conn.close()
                waiter.set_result(None)
            return
        if self._idle_count >= self._max_idle:
            self._discard(conn)
            return
        conn.idle_since = time.monotonic()
        conn.on_lost_while_idle = self._lost_while_idle
        self._idle.setdefault(conn.origin, []).append(conn)
        self._idle_count += 1

    def _discard(self, conn: Connection) -> None:
        """Close *conn* and free its slot (once, whatever the path)."""
        self._active.discard(conn)
        conn.close()
        if not conn.discarded:
            conn.discarded = True
            self._free_slot()

    def _free_slot(self) -> None:
        while self._waiters:
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the waiter
                return
        self._slots -= 1

    def _lost_while_idle(self, conn: Connection) -> None:
        conns = self._idle.get(conn.origin)
        if conns is not None and conn in conns:
            conns.remove(conn)
            self._idle_count -= 1
        self._discard(conn)

    def _evict_oldest_idle(self) -> None:
        oldest: Connection | None = None
        for conns in self._idle.values():
            if conns and (oldest is None or conns[0].idle_since < oldest.idle_since):
                oldest = conns[0]
        assert oldest is not None
        self._idle[oldest.origin].remove(oldest)
        self._idle_count -= 1
        oldest.discarded = True  # its slot stays taken: it passes to the caller
        oldest.close()

    def _prune(self, now: float) -> None:
        self._next_prune = now + _PRUNE_EVERY_S
        for conns in self._idle.values():
            while conns and now - conns[0].idle_since > self._expiry:
                conn = conns.pop(0)
                self._idle_count -= 1
                self._discard(conn)

    async def _connect(
        self, origin: Origin, request: httpx2.Request, timeout: float | None
    ) -> Connection:
        scheme, host, port = origin
        loop = self._loop
        assert loop is not None
        try:
            context = await self._ssl() if scheme == b"https" else None
            server_hostname = None
            if context is not None:
                sni = request.extensions.get("sni_hostname")
                server_hostname = sni.decode("ascii") if isinstance(sni, bytes) else (sni or host)
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: Connection(loop, origin),
                    host,
                    port,
                    ssl=context,
                    server_hostname=server_hostname,
                )
        except TimeoutError:
            raise httpx2.ConnectTimeout("timed out connecting", request=request) from None
        except OSError as exc:  # refused, DNS, TLS (ssl.SSLError is an OSError)
            raise httpx2.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        return conn

    async def _ssl(self) -> ssl.SSLContext:
        """httpx2's default TLS context, built once, in a thread: loading CAs takes tens of ms."""
        if self._ssl_context is not None:
            return self._ssl_context
        assert self._loop is not None
        if self._ssl_building is None:
            self._ssl_building = asyncio.ensure_future(
                self._loop.run_in_executor(None, self._build_ssl)
            )
        building = self._ssl_building
        try:
            context = await asyncio.shield(building)
        except OSError:
            if self._ssl_building is building:
                self._ssl_building = None  # a bad CA file: try again on the next connection
            raise
        self._ssl_context = context
        return context

    def _build_ssl(self) -> ssl.SSLContext:
        if isinstance(self._verify, ssl.SSLContext):
            return self._verify
        context = httpx2.create_ssl_context(verify=self._verify, trust_env=self._trust_env)
        context.set_alpn_protocols(["http/1.1"])
        return context


def _pool_timeout(waiter: asyncio.Future[Any], request: httpx2.Request) -> None:
    if not waiter.done():
        waiter.set_exception(
            httpx2.PoolTimeout("timed out waiting for a connection", request=request)
        )


def _request_head(request: httpx2.Request) -> tuple[bytes, bool]:
    """The request line and headers, and whether they say ``Connection: close``.

    A CR, LF or NUL inside the method, a header name or a value would let a caller's string
    start a header (or a request) of its own: refused, as h11 refuses it, before any I/O.
    """
    parts = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    close = False
    headers = request.headers.raw
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
        if name.lower() == b"connection" and value.lower() == b"close":
            close = True
    parts.append(b"\r\n")
    head = b"".join(parts)
    lines = len(headers) + 2
    if head.count(b"\n") != lines or head.count(b"\r") != lines or b"\0" in head:
        raise httpx2.LocalProtocolError(
            "illegal character (CR, LF or NUL) in the request head", request=request
        )
    return head, close


async def _send_request(
    conn: Connection, request: httpx2.Request, head: bytes, write_timeout: float | None
) -> None:
    try:
        body = request.content
    except httpx2.RequestNotRead:
        await conn.write(head, write_timeout)
        await _send_stream(conn, request, write_timeout)
        return
    await conn.write(head + body, write_timeout)


async def _send_stream(
    conn: Connection, request: httpx2.Request, write_timeout: float | None
) -> None:
    chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
    stream = request.stream
    assert isinstance(stream, httpx2.AsyncByteStream)
    async for part in stream:
        if not part:
            continue
        if conn.lost:  # the server answered (or closed) early: read what it said
            return
        await conn.write(b"%x\r\n%b\r\n" % (len(part), part) if chunked else part, write_timeout)
    if chunked and not conn.lost:
        await conn.write(b"0\r\n\r\n", write_timeout)


class _ResponseStream(httpx2.AsyncByteStream):
    """The response body as httpx2 reads it; the connection goes back to the pool at the end."""

    def __init__(
        self,
        transport: AsyncioHTTP1Transport,
        conn: Connection,
        request: httpx2.Request,
        read_timeout: float | None,
    ) -> None:
        self._transport = transport
        self._conn: Connection | None = conn
        self._request = request
        self._read_timeout = read_timeout

    async def __aiter__(self) -> AsyncGenerator[bytes, None]:
        conn = self._conn
        if conn is None:
            raise httpx2.StreamClosed()
        request = self._request
        try:
            while True:
                data = conn.take_body()
                if data is None:
                    await conn.wait(
                        self._read_timeout, lambda: httpx2.ReadTimeout("timed out", request=request)
                    )
                    continue
                if not data:
                    break
                yield data
        except GeneratorExit:
            # Closed by its reader before the end (``aclose()`` on the iterator): as
            # :meth:`aclose`, a message that has fully arrived leaves the connection reusable.
            self._done(reusable=conn.complete and conn.keep_alive)
            raise
        except BaseException:
            self._done(reusable=False)
            raise
        self._done(reusable=conn.keep_alive)

    @property
    def complete(self) -> bool:
        """Whether the whole message has arrived, so that closing the body unread keeps the
        connection for the next request (the rest is already buffered, or empty)."""
        conn = self._conn
        return conn is not None and conn.complete

    async def aclose(self) -> None:
        conn = self._conn
        if conn is not None:
            # Closed before the end of the message arrived: the connection cannot be reused.
            self._done(reusable=conn.complete and conn.keep_alive)

    def _done(self, *, reusable: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finish()
            self._transport._release(conn, reusable=reusable)


def raw_body(response: httpx2.Response) -> AsyncGenerator[bytes, None] | None:
    """The body of a streamed *response* from this transport, read straight off the connection.

    With no ``Content-Encoding`` these are the bytes ``response.aiter_bytes()`` yields, without
    the decoder, chunker and context layers httpx2 puts around each piece (three generators
    and two chunkers). ``None`` otherwise (another transport, a coded body, a body already read
    or closed): read ``aiter_bytes()``. Closing the iterator early ends the body as
    ``response.aclose()`` does; the caller still closes the response.
    """
    stream = response.stream
    if (
        type(stream) is not _ResponseStream
        or "content-encoding" in response.headers
        or response.is_stream_consumed
        or response.is_closed
    ):
        return None
    response.is_stream_consumed = True  # as aiter_raw() marks it: one reader only
    return stream.__aiter__()


def body_complete(response: httpx2.Response) -> bool:
    """Whether the whole of *response*'s message has arrived on genrouter's transport, so that
    closing it without reading the rest keeps its connection; ``False`` when unknown."""
    stream = response.stream
    return type(stream) is _ResponseStream and stream.complete


def build_mounts(
    limits: httpx2.Limits, *, verify: ssl.SSLContext | bool = True, trust_env: bool = True
) -> dict[str, httpx2.AsyncBaseTransport | None]:
    """The proxy mounts httpx2 builds from the environment (skipped when given ``transport=``).

    Same source (``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY``/``NO_PROXY`` via
    ``httpx2._utils.get_environment_proxies``), same transport (httpx2's own, with the proxy);
    a ``NO_PROXY`` entry maps to ``None``: the client's main transport, this one.
    """
    if not trust_env:
        return {}
    from httpx2._utils import get_environment_proxies

    mounts: dict[str, httpx2.AsyncBaseTransport | None] = {}
    for pattern, url in get_environment_proxies().items():
        mounts[pattern] = (
            None
            if url is None
            else httpx2.AsyncHTTPTransport(
                verify=verify, trust_env=trust_env, limits=limits, proxy=httpx2.Proxy(url=url)
            )
        )
    return mounts
