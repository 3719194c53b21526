"""The load generator of ``bench/gateway.py``: C keep-alive HTTP/1.1 clients on raw asyncio.

Each client owns one connection and sends the same prepared request again and again (a
closed loop: a client sends its next request when the last answer is complete). A run has
three phases: warm-up (until ``warmup_s`` has passed *and* every client has had one answer,
so connections are open and the clients are out of step), the measured window (``duration_s``,
stretched until ``min_done`` answers completed in it, up to ``max_s``), then the drain (no new
requests; the ones in flight get ``drain_s`` to finish, then are cancelled and counted as
unfinished, not as errors).

Measured: latency of every request that completed in the window (send → last byte), for
streams the time to the first SSE event (TTFT, send → first body chunk), throughput (answers
completed in the window ÷ its length) and errors in all three phases (a status other than
200, a body without the upstream's last content piece, a stream that does not end with
``data: [DONE]``, a timeout, a dropped connection).

A raw ``asyncio.Protocol`` rather than an HTTP library, so the generator's own CPU time per
request stays small next to the gateways it drives on the same two cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

ERROR_EXAMPLES = 3


@dataclass
class Response:
    """What one request got back."""

    status: int
    body: bytes
    first_body_at: float | None
    keep_alive: bool


class ClientConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that parses responses as they arrive."""

    def __init__(self, marker: bytes = b"") -> None:
        self.marker = marker
        self.marks = 0  # how often *marker* arrived in a body, over the connection's life
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.length: int | None = None
        self.chunked = False
        self.keep_alive = True
        self.in_body = False
        self.pieces: list[bytes] = []
        self.first_body_at: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the server closed the connection"))

    def send(self, request: bytes) -> asyncio.Future[Response]:
        """Send *request*; the future resolves with the complete response."""
        if self.transport is None or self.closed:
            raise ConnectionError("the connection is closed")
        self._reset()
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            self._parse()
        except ValueError as exc:  # a malformed response: fail the request, drop the connection
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(exc)
            if self.transport is not None:
                self.transport.close()

    def _parse(self) -> None:
        if not self.in_body:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self._head(bytes(self.buffer[:end]).decode("latin-1"))
            del self.buffer[: end + 4]
            self.in_body = True
        if self.chunked:
            self._chunks()
        elif self.length is not None and len(self.buffer) >= self.length:
            if self.length:
                self.first_body_at = self.first_body_at or time.perf_counter()
            self.pieces.append(bytes(self.buffer[: self.length]))
            del self.buffer[: self.length]
            self._finish()
        elif self.buffer and self.first_body_at is None:
            self.first_body_at = time.perf_counter()

    def _head(self, head: str) -> None:
        lines = head.split("\r\n")
        self.status = int(lines[0].split(" ", 2)[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                self.length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                self.chunked = True
            elif name == "connection" and value == "close":
                self.keep_alive = False
        if not self.chunked and self.length is None:
            raise ValueError("a response with neither content-length nor chunked encoding")

    def _chunks(self) -> None:
        while True:
            line_end = self.buffer.find(b"\r\n")
            if line_end < 0:
                return
            size = int(bytes(self.buffer[:line_end]).split(b";")[0], 16)
            if size == 0:
                trailer_end = self.buffer.find(b"\r\n", line_end + 2)
                if trailer_end < 0:
                    return
                del self.buffer[: trailer_end + 2]
                self._finish()
                return
            if len(self.buffer) < line_end + 2 + size + 2:
                return
            if self.first_body_at is None:
                self.first_body_at = time.perf_counter()
            piece = bytes(self.buffer[line_end + 2 : line_end + 2 + size])
            if self.marker:
                self.marks += piece.count(self.marker)
            self.pieces.append(piece)
            del self.buffer[: line_end + 2 + size + 2]

    def _finish(self) -> None:
        response = Response(self.status, b"".join(self.pieces), self.first_body_at, self.keep_alive)
        self.in_body = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(response)

    def close(self) -> None:
        """Close the connection."""
        if self.transport is not None:
            self.transport.close()


Check = Callable[[Response], str | None]
"""Returns why a response is wrong, or ``None`` when it is right."""


def chat_check(last_piece: str, *, stream: bool) -> Check:
    """The check for a chat completion whose content ends with *last_piece*."""
    needle = last_piece.encode()

    def check(response: Response) -> str | None:
        if response.status != 200:
            return f"HTTP {response.status}: {response.body[:120]!r}"
        if needle not in response.body:
            return f"the content lacks the last piece {last_piece!r}"
        if stream and not response.body.rstrip().endswith(b"data: [DONE]"):
            return "the stream does not end with data: [DONE]"
        return None

    return check


@dataclass
class LoadResult:
    """One run against one target."""

    clients: int
    window_s: float
    completed: int
    latencies_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    cpu_s: dict[str, float] = field(default_factory=dict)
    unfinished: int = 0
    """Requests still in flight when the drain ended (cancelled; not errors)."""
    marks: int = 0
    """How often the marker (a content piece) arrived in stream bodies during the window."""

    @property
    def throughput(self) -> float:
        """Answers completed per second of the window."""
        return self.completed / self.window_s if self.window_s > 0 else 0.0

    @property
    def error_count(self) -> int:
        """Every error, in every phase."""
        return sum(self.errors.values())


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (``nan`` for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    """The median (``nan`` for no values)."""
    return statistics.median(values) if values else float("nan")


@dataclass
class _Run:
    """What the clients share while a run goes on."""

    request: bytes
    check: Check
    timeout_s: float
    result: LoadResult
    marker: bytes
    answered: set[int] = field(default_factory=set)
    connections: list[ClientConnection] = field(default_factory=list)
    window_start: float = float("inf")
    window_end: float = float("inf")
    stop: bool = False
    done_in_window: int = 0


async def _connect(host: str, port: int, run: _Run) -> ClientConnection:
    _transport, connection = await asyncio.get_running_loop().create_connection(
        lambda: ClientConnection(run.marker), host, port
    )
    run.connections.append(connection)
    return connection


async def _client(ident: int, host: str, port: int, run: _Run) -> None:
    connection: ClientConnection | None = None
    try:
        while not run.stop:
            if connection is None or connection.closed:
                try:
                    connection = await _connect(host, port, run)
                except OSError as exc:
                    run.result.errors[f"connect: {type(exc).__name__}: {exc}"] += 1
                    await asyncio.sleep(0.05)
                    continue
            started = time.perf_counter()
            try:
                response = await asyncio.wait_for(connection.send(run.request), run.timeout_s)
            except (ConnectionError, ValueError, TimeoutError) as exc:
                run.result.errors[f"{type(exc).__name__}: {exc}"] += 1
                connection.close()
                connection = None
                continue
            ended = time.perf_counter()
            problem = run.check(response)
            if problem is not None:
                run.result.errors[problem] += 1
            elif run.window_start <= ended <= run.window_end:
                run.done_in_window += 1
                run.result.latencies_ms.append((ended - started) * 1000)
                if response.first_body_at is not None:
                    run.result.ttft_ms.append((response.first_body_at - started) * 1000)
            run.answered.add(ident)
            if not response.keep_alive:
                connection.close()
                connection = None
    finally:
        if connection is not None:
            connection.close()


CpuProbe = Callable[[], dict[str, float]]
"""Returns cumulative CPU seconds by name (the gateway's process tree, this process…)."""


async def run_load(
    host: str,
    port: int,
    request: bytes,
    check: Check,
    *,
    clients: int,
    warmup_s: float,
    duration_s: float,
    max_s: float,
    min_done: int,
    timeout_s: float = 300.0,
    drain_s: float = 5.0,
    cpu_probe: CpuProbe | None = None,
    marker: bytes = b"",
) -> LoadResult:
    """Drive one target with *clients* concurrent connections; see the module docstring.

    *marker* (a byte string that appears once per content event, e.g. ``b'"tok'``) is counted
    in chunked bodies, so a stream's throughput can be read from the events delivered in the
    window even when a slow target completes few whole streams in it.
    """
    result = LoadResult(clients=clients, window_s=0.0, completed=0)
    run = _Run(request, check, timeout_s, result, marker)
    tasks = [asyncio.create_task(_client(i, host, port, run)) for i in range(clients)]
    try:
        began = time.perf_counter()
        while time.perf_counter() - began < max_s and (
            time.perf_counter() - began < warmup_s or len(run.answered) < clients
        ):
            await asyncio.sleep(0.05)
        before = cpu_probe() if cpu_probe else {}
        marks_before = sum(connection.marks for connection in run.connections)
        run.window_start = time.perf_counter()
        await asyncio.sleep(duration_s)
        while run.done_in_window < min_done and time.perf_counter() - run.window_start < max_s:
            await asyncio.sleep(0.1)
        run.window_end = time.perf_counter()
        after = cpu_probe() if cpu_probe else {}
        run.result.marks = sum(connection.marks for connection in run.connections) - marks_before
        run.stop = True
        run.result.window_s = run.window_end - run.window_start
        run.result.completed = run.done_in_window
        run.result.cpu_s = {name: after[name] - before.get(name, 0.0) for name in after}
        _done, pending = await asyncio.wait(tasks, timeout=drain_s)
        run.result.unfinished = len(pending)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return run.result


def chat_request(host: str, port: int, path: str, body: bytes, api_key: str) -> bytes:
    """A prepared HTTP/1.1 POST of *body* (JSON) to *path*."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json\r\nAuthorization: Bearer {api_key}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body
