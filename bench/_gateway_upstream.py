"""A minimal, fast fake OpenAI chat-completions server for ``bench/gateway.py``.

``genrouter.testing.FakeLLMServer`` is built for tests (scripted replies, recorded requests,
faults); a gateway benchmark needs the opposite: an upstream that does as little as possible
per request, so the gateway in front of it is what gets measured. This one is a raw asyncio
``Protocol`` with every answer prepared once per model name:

- ``POST …/chat/completions`` → a chat completion, or with ``"stream": true`` an SSE stream of
  one role chunk, N content chunks (``tok0 `` … ``tok{N-1} ``), one finish chunk (and a usage
  chunk when ``stream_options.include_usage``), then ``data: [DONE]``, in HTTP/1.1 chunked
  encoding: by default the whole stream in one write (the gateway still parses and forwards
  every event on its own), with ``--gap-ms`` one write per event, that far apart;
- ``GET …/models`` → one model; ``GET /health`` → 200.

HTTP/1.1 keep-alive, no pipelining beyond answering requests in order.

    python bench/_gateway_upstream.py [--port 0] [--chunks 35] [--gap-ms 0]

prints ``http://127.0.0.1:PORT/v1`` on its first line of stdout, then serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

PROMPT_TOKENS = 12


def piece(index: int) -> str:
    """The text of content chunk *index* (the load generator checks for the last one)."""
    return f"tok{index} "


@dataclass
class Answers:
    """Every response body for one model name, encoded once."""

    completion: bytes
    stream: list[bytes]
    stream_with_usage: list[bytes]


@dataclass
class Upstream:
    """The prepared answers and the server's settings."""

    chunks: int
    gap_s: float
    answers: dict[str, Answers] = field(default_factory=dict)

    def for_model(self, model: str) -> Answers:
        """The answers for *model*, built at its first request."""
        found = self.answers.get(model)
        if found is None:
            found = self.answers[model] = self._build(model)
        return found

    def _build(self, model: str) -> Answers:
        created = int(time.time())
        text = "".join(piece(i) for i in range(self.chunks))
        usage = {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": self.chunks,
            "total_tokens": PROMPT_TOKENS + self.chunks,
        }
        completion = {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
        head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": created}
        head["model"] = model

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {**head, "choices": [choice]}

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": piece(i)}) for i in range(self.chunks)]
        events.append(chunk({}, "stop"))
        stream = [_chunked(_sse(event)) for event in events]
        tail = [_chunked(b"data: [DONE]\n\n"), b"0\r\n\r\n"]
        usage_event = _chunked(_sse({**head, "choices": [], "usage": usage}))
        return Answers(
            completion=_response(200, "application/json", json.dumps(completion).encode()),
            stream=[_STREAM_HEAD, *stream, *tail],
            stream_with_usage=[_STREAM_HEAD, *stream, usage_event, *tail],
        )


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)


def _sse(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _response(status: int, content_type: str, body: bytes) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "Error")
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _error(status: int, message: str) -> bytes:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": None}}
    return _response(status, "application/json", json.dumps(body).encode())


class Connection(asyncio.Protocol):
    """One client connection: parse requests in order, answer each."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.streaming: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.streaming is not None:
            self.streaming.cancel()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.streaming is None:
            self.process()

    def process(self) -> None:
        """Answer every complete request in the buffer (stops while a stream is being sent)."""
        while self.transport is not None and self.streaming is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            method, _, rest = head.partition(" ")
            self.answer(method, rest.partition(" ")[0].split("?")[0], body)

    def answer(self, method: str, path: str, body: bytes) -> None:
        """Write the answer to one request (a stream runs as a task)."""
        assert self.transport is not None
        if method == "POST" and path.endswith("/chat/completions"):
            try:
                request = json.loads(body)
                model = str(request.get("model") or "bench-model")
            except (ValueError, AttributeError):
                self.transport.write(_error(400, "the body is not a JSON object"))
                return
            answers = self.upstream.for_model(model)
            if not request.get("stream"):
                self.transport.write(answers.completion)
                return
            options = request.get("stream_options")
            usage = isinstance(options, dict) and bool(options.get("include_usage"))
            events = answers.stream_with_usage if usage else answers.stream
            if self.upstream.gap_s <= 0:
                self.transport.write(b"".join(events))
                return
            self.streaming = asyncio.get_running_loop().create_task(self.stream(events))
        elif method == "GET" and path.endswith("/models"):
            listed = {"object": "list", "data": [{"id": "bench-model", "object": "model"}]}
            self.transport.write(_response(200, "application/json", json.dumps(listed).encode()))
        elif method == "GET" and path in ("/health", "/healthz", "/"):
            self.transport.write(_response(200, "application/json", b'{"status":"ok"}'))
        else:
            self.transport.write(_error(404, f"no route {method} {path}"))

    async def stream(self, events: list[bytes]) -> None:
        """Send a stream's events ``gap_s`` apart, then go on with queued requests."""
        try:
            for event in events:
                if self.transport is None:
                    return
                self.transport.write(event)
                await asyncio.sleep(self.upstream.gap_s)
        finally:
            self.streaming = None
        self.process()


async def serve(host: str, port: int, chunks: int, gap_s: float) -> None:
    """Serve until cancelled; print the OpenAI base URL first."""
    upstream = Upstream(chunks=chunks, gap_s=gap_s)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(upstream), host, port, backlog=4096)
    bound = server.sockets[0].getsockname()[1]
    print(f"http://{host}:{bound}/v1", flush=True)
    async with server:
        await server.serve_forever()


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--chunks", type=int, default=35, help="content chunks per stream")
    parser.add_argument("--gap-ms", type=float, default=0.0, help="pause between stream events")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.chunks, args.gap_ms / 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
