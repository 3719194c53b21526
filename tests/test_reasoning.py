"""ThinkSplitter: whole texts, every split point, cut tags, missing tags."""

from __future__ import annotations

import random

import pytest

from genrouter.reasoning import ThinkSplitter, split_think


def _feed_pieces(pieces: list[str], starts_in_thought: bool | None = None) -> tuple[str, str]:
    splitter = ThinkSplitter(starts_in_thought=starts_in_thought)
    reasoning: list[str] = []
    content: list[str] = []
    for piece in pieces:
        r, c = splitter.feed(piece)
        reasoning.append(r)
        content.append(c)
    r, c = splitter.finish()
    return "".join([*reasoning, r]), "".join([*content, c])


@pytest.mark.parametrize(
    ("text", "starts_in_thought", "expected"),
    [
        (
            "<think>\nLet me see.\n</think>\n\nThe answer is 4.",
            None,
            ("Let me see.", "The answer is 4."),
        ),
        ("Let me see.\n</think>\n\nThe answer is 4.", None, ("Let me see.", "The answer is 4.")),
        ("Let me see.\n</think>\n\nThe answer is 4.", True, ("Let me see.", "The answer is 4.")),
        ("The answer is 4.", None, ("", "The answer is 4.")),
        ("The answer is 4.", False, ("", "The answer is 4.")),
        ("<think>a</think>b", False, ("a", "b")),
        ("\n<think>a</think>b", False, ("a", "b")),
        ("<think>\n\n</think>\n\nHi", None, ("", "Hi")),
        ("<think>unfinished thought", None, ("unfinished thought", "")),
        ("thought only", True, ("thought only", "")),
        ("<think>a</think>b</think>c", None, ("a", "b</think>c")),
        ("<think>a</think>b<think>c", None, ("a", "b<think>c")),
        ("x < y and <thin is not a tag", False, ("", "x < y and <thin is not a tag")),
        ("a < b</think>c", None, ("a < b", "c")),
        ("", None, ("", "")),
        ("", True, ("", "")),
        ("Before <think>mid</think> after", None, ("mid", "Before after")),
        ("line one\n  line two \n</think>ok", True, ("line one\n  line two", "ok")),
    ],
)
def test_split_whole_text(
    text: str, starts_in_thought: bool | None, expected: tuple[str, str]
) -> None:
    assert split_think(text, starts_in_thought=starts_in_thought) == expected


SAMPLES = [
    "<think>\nLet me see.\n</think>\n\nThe answer is 4.",
    "Let me see.\n</think>\n\nThe answer is 4.",
    "The answer < 4 is <thi not a tag.",
    "<think>a</think>b</think>c",
    "  <think> x \n </think>  y  ",
    "<think></think>",
    "</think>",
    "<think>",
    "a</think",
    "<thin",
]


@pytest.mark.parametrize("text", SAMPLES)
@pytest.mark.parametrize("starts_in_thought", [None, True, False])
def test_every_split_point_gives_the_same_result(text: str, starts_in_thought: bool | None) -> None:
    whole = split_think(text, starts_in_thought=starts_in_thought)
    for i in range(len(text) + 1):
        assert _feed_pieces([text[:i], text[i:]], starts_in_thought) == whole, i
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            pieces = [text[:i], text[i:j], text[j:]]
            assert _feed_pieces(pieces, starts_in_thought) == whole, (i, j)


def test_character_by_character_matches_whole() -> None:
    text = "<think>\nstep 1\nstep 2\n</think>\n\nfinal answer"
    assert _feed_pieces(list(text)) == ("step 1\nstep 2", "final answer")


def test_random_texts_from_tag_fragments_split_anywhere() -> None:
    """Property-style: random mixes of tag pieces and words, cut at random places."""
    rng = random.Random(1234)
    fragments = ["<", "think", ">", "</", "<think>", "</think>", "a", " ", "\n", "b c", "/"]
    for _ in range(400):
        text = "".join(rng.choice(fragments) for _ in range(rng.randint(0, 12)))
        mode = rng.choice([None, True, False])
        whole = split_think(text, starts_in_thought=mode)
        cuts = sorted(rng.sample(range(len(text) + 1), k=min(3, len(text) + 1)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert "".join(pieces) == text
        assert _feed_pieces(pieces, mode) == whole, (text, pieces, mode)
        reasoning, content = whole
        # Nothing is invented: both parts come from the text.
        assert len(reasoning) + len(content) <= len(text)


def test_tag_cut_across_chunks_streams_without_leaking_the_tag() -> None:
    splitter = ThinkSplitter()
    assert splitter.feed("<thi") == ("", "")
    assert splitter.feed("nk>reasoning here") == ("reasoning here", "")
    assert splitter.in_thought
    assert splitter.feed(" more</th") == (" more", "")
    assert splitter.feed("ink>\n\nAnswer") == ("", "Answer")
    assert not splitter.in_thought
    assert splitter.feed(" continues") == ("", " continues")
    assert splitter.finish() == ("", "")


def test_reasoning_streams_before_the_close_tag_arrives() -> None:
    splitter = ThinkSplitter(starts_in_thought=True)
    assert splitter.feed("first ") == ("first", "")
    assert splitter.feed("second") == (" second", "")
    assert splitter.feed("\n</think>done") == ("", "done")


def test_content_streams_at_once_when_the_text_starts_as_answer() -> None:
    splitter = ThinkSplitter(starts_in_thought=False)
    assert splitter.feed("Hello") == ("", "Hello")
    assert splitter.feed(" there <") == ("", " there ")
    assert splitter.feed("b>") == ("", "<b>")


def test_undecided_text_waits_for_a_tag_or_the_end() -> None:
    splitter = ThinkSplitter()
    assert splitter.feed("maybe a thought") == ("", "")
    assert splitter.finish() == ("", "maybe a thought")
