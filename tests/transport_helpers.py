"""Small raw asyncio HTTP servers on 127.0.0.1 for the transport tests (edge cases by hand)."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from genrouter._transport import AsyncioHTTP1Transport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "RawServer"], Awaitable[None]]


@dataclass
class RawServer:
    """Counts accepted connections and those the client closed; ``url`` is its base URL."""

    url: str = ""
    accepted: int = 0
    closed_by_client: int = 0
    requests: list[bytes] = field(default_factory=list)


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """One request head (through the blank line), or b"" when the client closed."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return b""


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def ok(body: bytes, *extra: bytes) -> bytes:
    """A 200 with Content-Length (and any extra header lines)."""
    headers = b"".join(line + b"\r\n" for line in extra)
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%b\r\n%b" % (len(body), headers, body)


async def serve_keepalive(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer, answer: bytes
) -> None:
    """Answer every request on the connection with *answer* until the client closes."""
    while head := await read_head(reader):
        body = await reader.readexactly(content_length(head))
        server.requests.append(head + body)
        writer.write(answer)
        await writer.drain()


@asynccontextmanager
async def raw_server(
    handler: Handler, *, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[RawServer]:
    state = RawServer()
    tasks: set[asyncio.Task[None]] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer, state)
            if reader.at_eof():
                state.closed_by_client += 1
        except (ConnectionError, asyncio.IncompleteReadError):
            state.closed_by_client += 1
        except asyncio.CancelledError:
            pass  # the test is over (a cancelled task here would be logged as an error)
        finally:
            tasks.discard(task)
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=ssl_context)
    port = server.sockets[0].getsockname()[1]
    state.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    try:
        yield state
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def transport(**limits: float | int | None) -> AsyncioHTTP1Transport:
    settings: dict[str, float | int | None] = {
        "max_connections": 10,
        "max_keepalive_connections": 5,
        "keepalive_expiry": 5.0,
    }
    settings.update(limits)
    return AsyncioHTTP1Transport(limits=httpx2.Limits(**settings))  # type: ignore[arg-type]


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll *predicate* (wide margin: the machine is slow); fail the test if it never holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 / localhost made with the openssl CLI (cert, key)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "/usr/bin/openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key
