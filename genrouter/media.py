"""Images for vision models: local files become ``data:`` URIs, remote URLs pass through.

Vendors accept an image as an http(s) URL or as a base64 ``data:`` URI; they cannot read the
caller's disk. :func:`resolve_image_source` turns a local path or ``file://`` URL into a data
URI, sniffing the type from the file's first bytes (an extension can lie) and refusing files
that are missing, unreadable, of an unknown type or too large, with a :class:`MediaError`
that names the source. It reads files, so async callers run it in a thread, and only when
some part is local (:func:`is_local_source`). Only regular files are read (a FIFO or a device
such as ``/dev/zero`` is refused, opened without blocking), and never more than the size cap;
:func:`check_local_file` makes the same checks with ``stat`` alone, for request validation.

``oss://`` URLs are DashScope's temporary uploads (valid 48 hours, read by DashScope only when
the request carries ``X-DashScope-OssResourceResolve: enable``; Alibaba Cloud Model Studio,
"Upload local files to get temporary URLs", alibabacloud.com/help/en/model-studio/
get-temporary-file-url, seen 2026-12-01). No other vendor can read them, so
:func:`is_local_source` counts them as needing resolution and :func:`resolve_image_source`
refuses them with a :class:`MediaError` that says so; the DashScope provider passes them
through (:func:`is_oss_url`) and sets the header.

:func:`image_dimensions` reads width and height from PNG, JPEG, GIF and WEBP headers without
Pillow, for token estimates.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
import struct
from pathlib import Path
from urllib.parse import unquote, urlsplit

from genrouter.errors import MediaError

__all__ = [
    "DEFAULT_MAX_IMAGE_BYTES",
    "check_local_file",
    "decode_data_uri",
    "image_dimensions",
    "is_local_source",
    "is_oss_url",
    "resolve_image_source",
    "sniff_image_type",
]

DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024

_DATA_URI = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^;,]*)*?),(?P<data>.*)$", re.S
)
_REMOTE_SCHEMES = ("http://", "https://")
OSS_SCHEME = "oss://"


def is_local_source(source: str) -> bool:
    """Whether *source* must be resolved before sending (a plain path, a ``file://`` URL, or
    an ``oss://`` URL only DashScope reads) rather than passed through (http(s), ``data:``)."""
    lowered = source[:8].lower()
    return not (lowered.startswith(_REMOTE_SCHEMES) or lowered.startswith("data:"))


def is_oss_url(source: str) -> bool:
    """Whether *source* is an ``oss://`` URL (a DashScope temporary upload)."""
    return source[:6].lower() == OSS_SCHEME


def sniff_image_type(head: bytes) -> str | None:
    """The MIME type of an image from its first bytes (PNG, JPEG, GIF, WEBP, BMP), or ``None``."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"BM") and len(head) >= 14:
        return "image/bmp"
    return None


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    """Split a ``data:`` URI into ``(mime type, decoded bytes)``.

    Raises :class:`MediaError` when the URI is not a well-formed data URI or its base64 payload
    does not decode.
    """
    match = _DATA_URI.match(uri)
    if match is None:
        raise MediaError(f"{_short(uri)} is not a valid data URI", source=_short(uri))
    mime = match.group("mime") or "text/plain"
    params = match.group("params") or ""
    payload = match.group("data")
    if ";base64" in params.lower():
        try:
            return mime, base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MediaError(
                f"data URI {_short(uri)} has an invalid base64 payload", source=_short(uri)
            ) from exc
    return mime, unquote(payload).encode("utf-8")


def resolve_image_source(source: str, *, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> str:
    """Return *source* in a form a vendor accepts: an http(s) URL or a ``data:`` URI.

    http(s) URLs pass through unchanged. ``data:`` URIs pass through after their shape and
    decoded size are checked. ``file://`` URLs and local paths (absolute, relative or starting
    with ``~``) are read and returned as ``data:<mime>;base64,...`` with the type sniffed from
    the file's content.

    Raises :class:`MediaError` (naming *source*) for a missing or unreadable file, a type that
    is not PNG, JPEG, GIF, WEBP or BMP, or more than *max_bytes* of image data.
    """
    lowered = source[:8].lower()
    if lowered.startswith(_REMOTE_SCHEMES):
        return source
    if lowered.startswith("data:"):
        mime, data = decode_data_uri(source)
        if not mime.startswith("image/"):
            raise MediaError(
                f"data URI {_short(source)} has type {mime!r}, not an image", source=_short(source)
            )
        _check_size(len(data), max_bytes, _short(source))
        return source
    if is_oss_url(source):
        raise MediaError(
            f"{_short(source)} is a DashScope temporary upload (oss://): only a dashscope "
            "provider can send it; use an http(s) URL, a data URI or a local file here",
            source=source,
        )
    path = _local_path(source)
    data = _read_file(path, source, max_bytes)
    sniffed = sniff_image_type(data[:32])
    if sniffed is None:
        raise MediaError(
            f"image {source!r} is not a PNG, JPEG, GIF, WEBP or BMP file "
            f"(first bytes {data[:8]!r})",
            source=source,
        )
    return f"data:{sniffed};base64,{base64.b64encode(data).decode('ascii')}"


def _local_path(source: str) -> Path:
    if source[:7].lower() == "file://":
        parts = urlsplit(source)
        if parts.netloc not in ("", "localhost"):
            raise MediaError(f"file URL {source!r} names a remote host", source=source)
        return Path(unquote(parts.path))
    try:
        return Path(source).expanduser()
    except RuntimeError as exc:  # "~someone/…" for a user that does not exist
        raise MediaError(f"image path {source!r} names an unknown user", source=source) from exc


def check_local_file(source: str, *, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> None:
    """Refuse, without opening it, a local media source that is not a regular file within
    *max_bytes*: missing, a directory, a FIFO, a device (``/dev/zero``) or a socket.

    ``stat`` never blocks, so request validation calls this before planning reads any file.
    """
    path = _local_path(source)
    try:
        info = path.stat()
    except (OSError, ValueError) as exc:  # ValueError: e.g. an embedded NUL byte in the path
        raise _unreadable(source, exc) from exc
    _check_regular(info.st_mode, source)
    _check_size(info.st_size, max_bytes, source)


def _check_regular(mode: int, source: str) -> None:
    if stat.S_ISDIR(mode):
        raise MediaError(f"image {source!r} is a directory, not a file", source=source)
    if not stat.S_ISREG(mode):
        raise MediaError(
            f"image {source!r} is not a regular file (a FIFO, device or socket); "
            "only regular files are read",
            source=source,
        )


# O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)


def _read_file(path: Path, source: str, max_bytes: int) -> bytes:
    try:
        # Open without blocking, then check what was opened (not the path, which could be
        # swapped): only a regular file within the cap is read, and never more than the cap.
        fd = os.open(path, _OPEN_FLAGS | getattr(os, "O_BINARY", 0))
        try:
            info = os.fstat(fd)
            _check_regular(info.st_mode, source)
            _check_size(info.st_size, max_bytes, source)
            chunks: list[bytes] = []
            left = max_bytes + 1
            while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
                chunks.append(chunk)
                left -= len(chunk)
        finally:
            os.close(fd)
        data = b"".join(chunks)
        _check_size(len(data), max_bytes, source)  # it grew after the size check
        return data
    except (OSError, ValueError) as exc:  # ValueError: e.g. an embedded NUL byte in the path
        raise _unreadable(source, exc) from exc


def _check_size(size: int, max_bytes: int, source: str) -> None:
    if size > max_bytes:
        raise MediaError(
            f"image {source!r} is {size} bytes, over the limit of {max_bytes} bytes",
            source=source,
        )


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` read from an image's header, or ``None`` if it cannot be read.

    Handles PNG, JPEG (SOF markers), GIF and WEBP (VP8, VP8L, VP8X) without decoding pixels.
    """
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return int(width), int(height)
        if data.startswith((b"GIF87a", b"GIF89a")):
            width, height = struct.unpack("<HH", data[6:10])
            return int(width), int(height)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_dimensions(data)
        if data.startswith(b"\xff\xd8"):
            return _jpeg_dimensions(data)
    except (struct.error, IndexError):  # a header cut short
        return None
    return None


def _webp_dimensions(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        # Lossy: a 3-byte frame tag, the start code 9d 01 2a, then 14-bit width and height.
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        # Lossless: signature 0x2f, then 14 bits width-1 and 14 bits height-1.
        if data[20] != 0x2F:
            return None
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        # Extended: 24-bit canvas width-1 and height-1 after 4 bytes of flags.
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


# SOF0..SOF15 carry the frame size, except DHT (C4), JPG (C8) and DAC (CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    pos = 2
    end = len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        if marker == 0xDA:  # start of scan: no frame header came first
            return None
        pos += 2 + length
    return None


def _unreadable(source: str, exc: OSError | ValueError) -> MediaError:
    """The typed error for a local image that could not be opened or read."""
    if isinstance(exc, FileNotFoundError):
        return MediaError(f"image file {source!r} does not exist", source=source)
    if isinstance(exc, PermissionError):
        return MediaError(f"image file {source!r} is not readable", source=source)
    if isinstance(exc, ValueError):
        return MediaError(f"image path {source!r} is not a valid path: {exc}", source=source)
    return MediaError(
        f"image file {source!r} could not be read: {exc.strerror or exc}", source=source
    )
