"""The byte-level SSE decoder: framing, line endings, comments and non-SSE input."""

from __future__ import annotations

import pytest

from genrouter.providers._sse import SSEDecoder, SSEFormatError

STREAM = (
    b": keep-alive\n\n"
    b'data: {"a": 1}\n\n'
    b"event: error\ndata: first\ndata: second\n\n"
    b"id: 7\nretry: 100\ndata: [DONE]\n\n"
)
EXPECTED = [(None, b'{"a": 1}'), ("error", b"first\nsecond"), (None, b"[DONE]")]


def feed_all(decoder: SSEDecoder, pieces: list[bytes]) -> list[tuple[str | None, bytes]]:
    events = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    events.extend(decoder.flush())
    return events


def test_whole_stream_in_one_chunk() -> None:
    assert feed_all(SSEDecoder(), [STREAM]) == EXPECTED


def test_stream_split_at_every_byte() -> None:
    pieces = [STREAM[i : i + 1] for i in range(len(STREAM))]
    assert feed_all(SSEDecoder(), pieces) == EXPECTED


@pytest.mark.parametrize("ending", [b"\r\n", b"\r"])
def test_other_line_endings_split_anywhere(ending: bytes) -> None:
    stream = STREAM.replace(b"\n", ending)
    assert feed_all(SSEDecoder(), [stream]) == EXPECTED
    pieces = [stream[i : i + 3] for i in range(0, len(stream), 3)]
    assert feed_all(SSEDecoder(), pieces) == EXPECTED


def test_crlf_split_between_cr_and_lf_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r") == []
    assert decoder.feed(b"\n\r") == []
    assert decoder.feed(b"\n") == [(None, b"x")]


def test_flush_returns_event_without_final_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: tail") == []
    assert decoder.flush() == [(None, b"tail")]


def test_data_without_space_after_colon() -> None:
    assert feed_all(SSEDecoder(), [b"data:{}\n\n"]) == [(None, b"{}")]


def test_empty_blank_lines_make_no_events() -> None:
    assert feed_all(SSEDecoder(), [b"\n\n\n"]) == []


def test_non_sse_body_is_refused() -> None:
    decoder = SSEDecoder()
    with pytest.raises(SSEFormatError, match="not a server-sent event stream") as info:
        decoder.feed(b"<html>502 Bad Gateway</html>\n")
    assert info.value.line.startswith(b"<html>")


def test_json_body_instead_of_events_is_refused() -> None:
    with pytest.raises(SSEFormatError):
        SSEDecoder().feed(b'{"error": {"message": "nope"}}\n')


def test_a_byte_order_mark_at_the_start_is_skipped_even_when_split() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"\xef") == []
    assert decoder.feed(b"\xbb\xbfdata: {}\n\n") == [(None, b"{}")]


def test_a_line_without_end_is_refused_beyond_the_cap() -> None:
    decoder = SSEDecoder(max_line=64)
    with pytest.raises(SSEFormatError):
        decoder.feed(b"data: " + b"x" * 100)
