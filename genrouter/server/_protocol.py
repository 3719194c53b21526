"""uvicorn's httptools protocol, with each response's head written together with its body.

uvicorn writes a response's status line and headers the moment the app sends
``http.response.start``, and the body at the next ``http.response.body``: two socket writes
(two system calls, and on loopback two wake-ups of the client) for every answer, where one
would do. Here the head is held until the next write on the connection, which carries it, or
until the end of the current turn of the event loop when no write follows in that turn (an
app that awaits something slow between the two). So every byte goes out in the order uvicorn
wrote it, no later than the loop would next go idle, and a response whose body follows its
start at once (every gateway answer: a completion, an error, a stream's first event) costs
one write instead of two. ``bench/gateway.py`` measures what it saves (docs/benchmarks.md).

Only the write path changes: everything else on the transport (flow control, closing, address
lookups, protocol switches) is the transport's own.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HeadWithBodyProtocol"]

# How every head uvicorn writes begins (its status lines are HTTP/1.1 whatever the request).
_HEAD = b"HTTP/1.1 "


class _HeadWithBody:
    """A transport whose response heads wait for the next write (or the end of the turn)."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif bytes(data[:9]) == _HEAD:
            self._held = bytes(data)
            self._loop.call_soon(self._release)
        else:
            self._transport.write(data)

    def writelines(self, lines: Any) -> None:
        self.write(b"".join(lines))

    def _release(self) -> None:
        """The turn ended with a head still held: write it on its own."""
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._release()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        held = self._held
        return self._transport.get_write_buffer_size() + (len(held) if held else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HeadWithBodyProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` over :class:`_HeadWithBody` (pass as uvicorn's ``http``)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(cast(asyncio.Transport, _HeadWithBody(transport, self.loop)))
