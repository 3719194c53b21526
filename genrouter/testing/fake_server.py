"""A fake OpenAI-compatible chat completions server on 127.0.0.1, for tests and benchmarks.

It speaks HTTP/1.1 with keep-alive on asyncio streams (no extra dependency), answers any
``POST .../chat/completions`` (so both ``/v1`` and DashScope's ``/compatible-mode/v1`` work),
streams real server-sent events with chunked transfer encoding, and injects the faults real
providers produce: error statuses, slow headers or tokens, connections cut mid-answer,
malformed JSON or SSE, error events inside a stream.

::

    from genrouter.testing import FakeLLMServer, Reply

    with FakeLLMServer() as server:
        server.enqueue(Reply.error(429, code="rate_limit_exceeded", headers={"Retry-After": "1"}),
                       Reply.text("Hello!"))
        ...  # point your client at server.openai_base_url
        assert server.requests[-1].body["model"] == "gpt-4o-mini"

With nothing queued it answers ``"echo: <last user text>"``.

``GET .../models`` (``/v1/models`` and ``/compatible-mode/v1/models``) lists the models given
with ``models=`` or :meth:`FakeLLMServer.set_models`, each an id or a dict of extra fields
(``{"id": "o3-mini", "shutdown_date": "2026-10-23"}``, as OpenAI's list now carries).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

from genrouter.testing._dashscope_wire import dashscope_input_error
from genrouter.testing._replies import (
    Reply,
    completion_payload,
    error_payload,
    split_text,
    stream_payloads,
)

__all__ = ["FakeLLMServer", "RecordedRequest", "Reply"]

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
_REASONS.update({408: "Request Timeout", 409: "Conflict", 422: "Unprocessable Entity"})
_REASONS.update({429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway"})
_REASONS.update({503: "Service Unavailable", 504: "Gateway Timeout"})


@dataclass(frozen=True)
class RecordedRequest:
    """A request the server received: ``headers`` have lower-case names; ``body`` is the
    parsed JSON (``None`` if the body was not JSON) and ``raw`` the bytes."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes = field(repr=False)


class FakeLLMServer:
    """An OpenAI-compatible server on ``127.0.0.1`` with scripted replies.

    Use it as a context manager (``with`` or ``async with``): it serves from its own thread and
    event loop, so it works under any test runner and next to any client. For a separate
    process, run ``python -m genrouter.testing serve --port 0``.

    ``default_reply`` replaces the echo answer for requests with nothing queued.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        default_reply: Reply | None = None,
        models: Sequence[str | Mapping[str, Any]] = (),
    ) -> None:
        self._host = host
        self._port = port
        self._default_reply = default_reply
        self._lock = threading.Lock()
        self._models: list[dict[str, Any]] = []
        self._models_status = 200
        self.set_models(models)
        self._queues: dict[str | None, deque[Reply]] = {}
        self._requests: list[RecordedRequest] = []
        self._connections = 0
        self._counter = 0
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    # -- addresses ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port it listens on (chosen by the OS when created with ``port=0``)."""
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self._host}:{self._port}"

    @property
    def openai_base_url(self) -> str:
        """The OpenAI-style API root, ``http://127.0.0.1:PORT/v1``."""
        return self.base_url + "/v1"

    @property
    def dashscope_base_url(self) -> str:
        """DashScope's compatible-mode root, ``http://127.0.0.1:PORT/compatible-mode/v1``."""
        return self.base_url + "/compatible-mode/v1"

    # -- scripting and inspection --------------------------------------------------------

    def enqueue(self, *replies: Reply, model: str | None = None) -> None:
        """Queue *replies*, answered in order. With *model*, only requests for that model
        take them; ``model=None`` replies go to any request whose model has none queued."""
        with self._lock:
            self._queues.setdefault(model, deque()).extend(replies)

    def set_models(self, models: Sequence[str | Mapping[str, Any]], *, status: int = 200) -> None:
        """What ``GET .../models`` lists from now on; a *status* other than 200 answers that
        error instead (a provider whose model list fails)."""
        listed = []
        for entry in models:
            fields = {"id": entry} if isinstance(entry, str) else dict(entry)
            listed.append({"object": "model", "created": 0, "owned_by": "fake", **fields})
        with self._lock:
            self._models = listed
            self._models_status = status

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def pending(self) -> int:
        """How many queued replies have not been used yet."""
        with self._lock:
            return sum(len(q) for q in self._queues.values())

    @property
    def connections_open(self) -> int:
        """Client connections open right now (drops when a client releases its socket)."""
        with self._lock:
            return self._connections

    def reset(self) -> None:
        """Forget queued replies and recorded requests."""
        with self._lock:
            self._queues.clear()
            self._requests.clear()

    async def wait_for_connections(self, at_most: int, *, timeout: float = 2.0) -> int:
        """Wait until at most *at_most* connections are open; return the count then."""
        deadline = time.monotonic() + timeout
        while self.connections_open > at_most and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return self.connections_open

    def _next_reply(self, model: str | None) -> Reply | None:
        with self._lock:
            for key in (model, None):
                queue = self._queues.get(key)
                if queue:
                    return queue.popleft()
        return None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        """Start serving from a background thread; returns once the port is bound."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:  # reported to start()'s caller below
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="genrouter-fake-llm", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        """Close every connection and stop the server thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeLLMServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    async def serve_forever(self) -> None:
        """Serve on the running event loop until cancelled (used by ``python -m``)."""
        await self._listen()
        try:
            await asyncio.Event().wait()
        finally:
            await self._shutdown()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # -- HTTP ---------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self._writers.add(writer)
        with self._lock:
            self._connections += 1
        try:
            while await self._serve_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away; that is its right
        except asyncio.CancelledError:
            pass  # shutting down
        finally:
            with self._lock:
                self._connections -= 1
            self._writers.discard(writer)
            writer.close()
            if task is not None:
                self._handlers.discard(task)

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read one request and answer it; return whether the connection stays open."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        lines = head.decode("latin-1").split("\r\n")
        method, path, version = [*lines[0].split(" ", 2), "", ""][:3]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            raw = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            raw = await _read_chunked(reader)
        else:
            raw = b""
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self._requests.append(RecordedRequest(method, path.split("?")[0], headers, body, raw))
        if method == "GET" and path.split("?")[0].endswith("/models"):
            with self._lock:
                listed, status = list(self._models), self._models_status
            if status != 200:
                await _send(writer, status, error_payload(status), {})
            else:
                await _send(writer, 200, {"object": "list", "data": listed}, {})
            return keep_alive
        if method != "POST" or not path.split("?")[0].endswith("/chat/completions"):
            await _send(writer, 404, error_payload(404, message=f"no route {method} {path}"), {})
            return keep_alive
        refusal = dashscope_input_error(body) if "/compatible-mode/" in path else None
        if refusal is not None:  # what DashScope's compatible mode refuses, refused the same way
            await _send(writer, 400, refusal, {})
            return keep_alive
        model = body.get("model") if isinstance(body, dict) else None
        reply = self._next_reply(model if isinstance(model, str) else None)
        if reply is None:
            reply = replace(self._default_reply) if self._default_reply else Reply()
        pause = _Pause(reader, writer)
        answered = await self._answer(reply, body if isinstance(body, dict) else {}, writer, pause)
        return answered and keep_alive

    async def _answer(
        self, reply: Reply, body: dict[str, Any], writer: asyncio.StreamWriter, pause: _Pause
    ) -> bool:
        if reply.delay_headers_s:
            await pause(reply.delay_headers_s)
        if reply.status != 200:
            error = reply.body if reply.body is not None else error_payload(reply.status)
            await _send(writer, reply.status, error, reply.headers)
            return True
        with self._lock:
            self._counter += 1
            ident = f"chatcmpl-fake-{self._counter}"
        raw_messages = body.get("messages")
        messages: list[Any] = raw_messages if isinstance(raw_messages, list) else []
        pieces = reply.pieces("echo: " + _last_user_text(messages))
        model = str(body.get("model") or "fake-model")
        common: dict[str, Any] = {
            "model": model,
            "ident": ident,
            "created": int(time.time()),
            "pieces": pieces,
            "prompt_tokens": _count_prompt_tokens(messages),
        }
        if body.get("stream"):
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            return await self._stream(reply, writer, pause, include_usage=include_usage, **common)
        if reply.delay_first_token_s:
            await pause(reply.delay_first_token_s)
        if reply.body_200 is not None:
            await _send(writer, 200, reply.body_200, reply.headers)
            return True
        if reply.malformed:
            await _send(writer, 200, b'{"id": "chatcmpl-broken", "choices": [', reply.headers)
            return True
        payload = completion_payload(reply, **common)
        if reply.cut_after is not None:
            data = json.dumps(payload).encode()
            head = _head(200, "application/json", reply.headers, length=len(data))
            writer.write(head + data[: len(data) // 2])
            await writer.drain()
            return False
        await _send(writer, 200, payload, reply.headers)
        return True

    async def _stream(
        self,
        reply: Reply,
        writer: asyncio.StreamWriter,
        pause: _Pause,
        *,
        include_usage: bool,
        **common: Any,
    ) -> bool:
        if reply.body_200 is not None or reply.malformed == "sse":
            return await _raw_200(writer, reply)
        writer.write(_head(200, "text/event-stream", reply.headers, length=None))
        opening, texts, closing = stream_payloads(reply, include_usage=include_usage, **common)
        for payload in opening:
            await _write_chunk(writer, _event(payload))
        if reply.delay_first_token_s:
            await pause(reply.delay_first_token_s)
        if reply.malformed == "json":
            await _write_chunk(writer, b'data: {"id": "chatcmpl-broken", "choices": [\n\n')
            await _write_chunk(writer, b"")
            return True
        for sent, payload in enumerate(texts):
            if reply.error_event is not None and sent == reply.error_after:
                return await _end_with_error(writer, reply.error_event)
            if reply.cut_after is not None and sent == reply.cut_after:
                return False  # the caller closes the socket: no final chunk, no [DONE]
            gap = reply.delay_between_chunks_s if sent else 0.0
            gap += reply.stall_s if sent == reply.stall_after else 0.0
            if gap:
                await pause(gap)
            await _write_chunk(writer, _event(payload))
        if reply.error_event is not None:
            return await _end_with_error(writer, reply.error_event)
        if reply.cut_after is not None and reply.cut_after <= len(texts):
            return False
        return await _close_stream(writer, reply, closing)


class _Pause:
    """Waits for a scripted delay, but notices at once when the client hangs up.

    Without this a handler sleeping between chunks would hold its connection open (and
    ``connections_open`` up) until its next write, hiding whether the client let go.
    """

    __slots__ = ("_reader", "_writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def __call__(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            if self._reader.at_eof() or self._writer.is_closing():
                raise ConnectionResetError("the client closed the connection")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, 0.02))


async def _close_stream(
    writer: asyncio.StreamWriter, reply: Reply, closing: list[dict[str, Any]]
) -> bool:
    """The finish-reason and usage chunks, then ``[DONE]`` (or a cut, when scripted)."""
    for payload in closing:
        await _write_chunk(writer, _event(payload))
        choices = payload["choices"]
        if reply.drop_after_finish and choices and choices[0].get("finish_reason"):
            return False  # the connection is lost after the finish reason, before [DONE]
    await _write_chunk(writer, b"data: [DONE]\n\n")
    await _write_chunk(writer, b"")
    return True


async def _raw_200(writer: asyncio.StreamWriter, reply: Reply) -> bool:
    """A 200 whose chunked body is ``reply.body_200`` as it is (empty, an HTML page…)."""
    content_type = reply.headers.get("Content-Type", "text/event-stream")
    extra = {k: v for k, v in reply.headers.items() if k.lower() != "content-type"}
    writer.write(_head(200, content_type, extra, length=None))
    body = reply.body_200
    if body is None:  # malformed="sse": a proxy's error page sent as an event stream
        body = b"<html><body>502 Bad Gateway</body></html>\n\n"
    if body:
        await _write_chunk(writer, body)
    await _write_chunk(writer, b"")
    return True


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


async def _end_with_error(writer: asyncio.StreamWriter, error: dict[str, Any]) -> bool:
    await _write_chunk(writer, _event(error))
    await _write_chunk(writer, b"")
    return True


def _head(status: int, content_type: str, headers: dict[str, str], *, length: int | None) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"Content-Type: {content_type}"]
    if length is None:
        lines.append("Transfer-Encoding: chunked")
        lines.append("Cache-Control: no-cache")
    else:
        lines.append(f"Content-Length: {length}")
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _send(
    writer: asyncio.StreamWriter,
    status: int,
    body: dict[str, Any] | str | bytes,
    headers: dict[str, str],
) -> None:
    if isinstance(body, dict):
        data = json.dumps(body).encode()
    else:
        data = body.encode() if isinstance(body, str) else body
    content_type = "application/json" if isinstance(body, dict) else "text/plain"
    extra = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    if any(k.lower() == "content-type" for k in headers):
        content_type = next(v for k, v in headers.items() if k.lower() == "content-type")
    writer.write(_head(status, content_type, extra, length=len(data)) + data)
    await writer.drain()


async def _write_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(b"%x\r\n%s\r\n" % (len(data), data))
    await writer.drain()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def _count_prompt_tokens(messages: list[Any]) -> int:
    words = sum(
        len(split_text(_text_of(m.get("content")))) for m in messages if isinstance(m, dict)
    )
    return max(words, 1)
