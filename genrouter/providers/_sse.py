"""A small incremental server-sent events decoder that works on bytes.

Streaming providers feed it the response's byte chunks and get back complete events as
``(event name or None, data bytes)``. Working on bytes skips the text decoding and line
splitting layers of ``aiter_lines`` (measured a little faster: about 2% of a 35-chunk
streamed request on loopback, see ``bench/overhead.py``), and the data goes straight to
pydantic's ``model_validate_json``, which takes bytes.

Lines end in ``\\n``, ``\\r\\n`` or ``\\r`` (the SSE spec allows all three). Comments (``:``
lines, used as keep-alives) are skipped. A line whose field is not one of ``data``,
``event``, ``id`` or ``retry`` means the body is not an event stream at all (an HTML error
page, a JSON body): :class:`SSEFormatError` says so rather than silently skipping it.
"""

from __future__ import annotations

__all__ = ["SSEDecoder", "SSEFormatError", "ServerSentEvent"]

ServerSentEvent = tuple[str | None, bytes]
"""One event: its ``event:`` name (``None`` when unnamed) and its data, lines joined by ``\\n``."""

_KNOWN_FIELDS = frozenset({b"event", b"id", b"retry"})


class SSEFormatError(ValueError):
    """The bytes are not a server-sent event stream. ``line`` is the offending line."""

    def __init__(self, line: bytes) -> None:
        self.line = line
        shown = line[:120].decode("utf-8", "replace")
        super().__init__(f"not a server-sent event stream: unexpected line {shown!r}")


class SSEDecoder:
    """Turns byte chunks (split anywhere) into complete server-sent events."""

    __slots__ = ("_data", "_event", "_max_line", "_parts", "_pending", "_started")

    def __init__(self, *, max_line: int = 16 * 1024 * 1024) -> None:
        # A line longer than *max_line* is not a chat stream (a chunk is a few hundred bytes):
        # it is refused rather than buffered without bound.
        self._max_line = max_line
        # The unfinished line, in pieces: joined only once its end arrives, so a long line fed
        # in many chunks costs linear time, not quadratic (each feed re-copying the buffer).
        self._parts: list[bytes] = []
        self._pending = 0
        self._data: list[bytes] = []
        self._event: str | None = None
        self._started = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Add *chunk*; return the events it completed (possibly none)."""
        parts = self._parts
        if (
            not parts
            and chunk.startswith(b"data: ")
            and chunk.find(b"\n") == len(chunk) - 2
            and chunk.endswith(b"\n\n")
            and self._started
            and not self._data
            and self._event is None
            and b"\r" not in chunk
        ):
            # Exactly one whole one-line event (what most servers put in each HTTP chunk):
            # no line splitting needed.
            return [(None, chunk[6:-2])]
        if (
            not parts
            and not self._data
            and self._event is None
            and (self._started or chunk.startswith(b"data: "))  # (no byte-order mark)
        ):
            whole = self._whole_events(chunk)
            if whole is not None:
                self._started = True
                return whole
        if (
            self._started
            and b"\n" not in chunk
            and b"\r" not in chunk
            and not (parts and parts[-1].endswith(b"\r"))
        ):
            # No line ends here: keep the piece and wait (the common case for a long line).
            parts.append(chunk)
            self._pending += len(chunk)
            if self._pending > self._max_line:
                raise SSEFormatError(b"".join(parts)[:120])
            return []
        buffer = b"".join(parts) + chunk if parts else chunk
        if not self._started and buffer:
            if len(buffer) < 3 and b"\xef\xbb\xbf".startswith(buffer):
                self._keep(buffer)  # maybe the start of a byte-order mark: wait for more
                return []
            self._started = True
            buffer = buffer.removeprefix(b"\xef\xbb\xbf")  # the spec allows one at the start
        held = b""
        if b"\r" in buffer:
            # A trailing \r may be the first half of a \r\n split across chunks: hold it back.
            if buffer.endswith(b"\r"):
                buffer, held = buffer[:-1], b"\r"
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *lines, rest = buffer.split(b"\n")
        if len(rest) > self._max_line:
            raise SSEFormatError(rest[:120])
        self._keep(rest + held)
        events: list[ServerSentEvent] = []
        for line in lines:
            self._line(line, events)
        return events

    def _whole_events(self, chunk: bytes) -> list[ServerSentEvent] | None:
        """*chunk* as one-line ``data: `` events (and the start of the next line), or
        ``None`` when it holds anything else (then the line-by-line path decodes it).

        Several events arrive in one piece whenever the server writes faster than the client
        reads: split on the blank lines once instead of line by line (about 1 us per event).
        """
        if b"\r" in chunk:
            return None
        *whole, rest = chunk.split(b"\n\n")
        if b"\n" in rest or len(rest) > self._max_line:
            return None
        for event in whole:
            if not event.startswith(b"data: ") or b"\n" in event:
                return None
        self._keep(rest)
        return [(None, event[6:]) for event in whole]

    def _keep(self, unfinished: bytes) -> None:
        self._parts = [unfinished] if unfinished else []
        self._pending = len(unfinished)

    def flush(self) -> list[ServerSentEvent]:
        """The stream ended: return the last event if the server omitted its blank line."""
        events: list[ServerSentEvent] = []
        rest = b"".join(self._parts).rstrip(b"\r")
        self._keep(b"")
        if rest:
            self._line(rest, events)
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[ServerSentEvent]) -> None:
        if not line:
            if self._data:
                data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
                events.append((self._event, data))
                self._data = []
            self._event = None
            return
        if line[0] == 0x3A:  # ":" starts a comment
            return
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name not in _KNOWN_FIELDS:
            raise SSEFormatError(line)
