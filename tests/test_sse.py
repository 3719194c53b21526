"""The byte-level SSE decoder: framing, line endings, comments and non-SSE input."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

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


def test_a_long_line_in_many_small_chunks_decodes_whole() -> None:
    # Fed 4 KiB at a time, an 8 MiB line is joined once (linear), not re-copied per chunk.
    payload = b"x" * (8 * 1024 * 1024)
    wire = b"data: " + payload + b"\n\n"
    decoder = SSEDecoder()
    events = []
    for start in range(0, len(wire), 4096):
        events.extend(decoder.feed(wire[start : start + 4096]))
    assert events == [(None, payload)]


def test_a_long_line_over_the_cap_is_refused_while_it_grows() -> None:
    decoder = SSEDecoder(max_line=100)
    decoder.feed(b"data: ")
    with pytest.raises(SSEFormatError):
        for _ in range(50):
            decoder.feed(b"y" * 10)


def test_a_carriage_return_split_from_its_newline_still_ends_the_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r\n") == [(None, b"a")]
    assert decoder.feed(b"data: b\r") == []
    assert decoder.feed(b"more") == []  # the held \r ended "data: b"; "more" is a new line


def test_one_event_per_chunk_decodes_as_the_whole_stream_does() -> None:
    # One whole event per chunk takes a shortcut; interleaved with chunks that do not (a named
    # event, a comment, a multi-line event, CRLF, a space kept after "data: "), it must agree
    # with the same bytes decoded in one piece.
    pieces = [
        b"data: first\n\n",
        b'data: {"a": 1}\n\n',
        b"event: named\n",
        b"data: after a name\n\n",
        b": keep-alive\n\n",
        b"data:  two spaces\n\n",
        b"data: one\ndata: two\n\n",
        b"data: crlf\r\n\r\n",
        b"data: [DONE]\n\n",
    ]
    decoder = SSEDecoder()
    one_by_one = [event for piece in pieces for event in decoder.feed(piece)]
    assert one_by_one == SSEDecoder().feed(b"".join(pieces))
    assert one_by_one[0] == (None, b"first")
    assert (None, b" two spaces") in one_by_one
    assert ("named", b"after a name") in one_by_one


_EVENT_KINDS = [
    b'data: {"n": 1}\n\n',
    b"data: [DONE]\n\n",
    b"data:no-space\n\n",
    b"data: a\ndata: b\n\n",
    b"event: error\ndata: named\n\n",
    b": comment\n\n",
    b"data: crlf\r\n\r\n",
    b"id: 3\ndata: with id\n\n",
    b"\n",
    b"data: \n\n",
]


@given(
    kinds=st.lists(st.sampled_from(_EVENT_KINDS), max_size=12),
    at_events=st.sets(st.integers(min_value=0, max_value=12), max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=6),
)
@example(kinds=[_EVENT_KINDS[0], _EVENT_KINDS[3], _EVENT_KINDS[1]], at_events=set(), cuts=[])
def test_any_split_of_any_stream_decodes_as_byte_by_byte(
    kinds: list[bytes], at_events: set[int], cuts: list[int]
) -> None:
    # Pieces that hold several whole events take a shortcut (split on blank lines); pieces
    # with anything else take the line-by-line path. Either way the events must be those of
    # the same bytes fed one at a time. Cuts fall between events (where the shortcut starts)
    # and anywhere.
    stream = b"".join(kinds)
    ends = list(itertools.accumulate(len(kind) for kind in kinds))
    between = {ends[i] for i in at_events if i < len(ends)}
    inside = {cut for cut in cuts if cut < len(stream)}
    bounds = sorted({0, len(stream), *between, *inside})
    pieces = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    expected = feed_all(SSEDecoder(), [stream[i : i + 1] for i in range(len(stream))])
    assert feed_all(SSEDecoder(), pieces) == expected
    if kinds:  # the first event starts the decoder; the rest in one piece
        assert feed_all(SSEDecoder(), [stream[: ends[0]], stream[ends[0] :]]) == expected


def test_several_whole_events_in_one_piece_then_a_partial_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: 1\n\n") == [(None, b"1")]  # started
    assert decoder.feed(b"data: 2\n\ndata: 3\n\ndata: 4") == [(None, b"2"), (None, b"3")]
    assert decoder.feed(b"4\n\n") == [(None, b"44")]
