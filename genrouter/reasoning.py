"""Split ``<think>…</think>`` reasoning from answer text, all at once or as it streams.

DeepSeek-R1 and its distills write their chain of thought between ``<think>`` and
``</think>`` and then the answer. OpenAI-style APIs return the two apart, as
``reasoning_content`` and ``content``; :class:`ThinkSplitter` does the same for text that
arrives in pieces, where a tag may be cut anywhere (``<thi`` + ``nk>``).

Three shapes of output are handled:

* ``<think>thought</think>answer`` — the model opens the thought itself;
* ``thought</think>answer`` — newer R1 chat templates put ``<think>`` at the end of the
  prompt, so only the closing tag appears in the output;
* ``answer`` — no tags at all.

Whitespace that only frames the parts (the newline after ``<think>``, the blank line after
``</think>``, trailing newlines of the thought) is dropped, as DeepSeek's API does.

Everything here is pure: no I/O and no state outside the splitter object.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["CLOSE_TAG", "OPEN_TAG", "ThinkSplitter", "split_think"]

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"


class _State(Enum):
    UNDECIDED = "undecided"  # no tag seen yet, and the text may turn out to be reasoning
    REASONING = "reasoning"
    CONTENT = "content"


def _partial_tag_length(text: str, tag: str) -> int:
    """Length of the longest end of *text* that could be the start of *tag*."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ThinkSplitter:
    """Incrementally split streamed text into ``(reasoning_delta, content_delta)``.

    ``starts_in_thought`` says what the text begins as:

    * ``True`` — inside the thought (the prompt ended with ``<think>``); text is reasoning
      until ``</think>``.
    * ``False`` — answer text, unless it opens with ``<think>``.
    * ``None`` (default) — unknown: text is held back until a tag decides it. ``</think>``
      first means everything before it was reasoning; ``<think>`` first opens the thought;
      no tag by :meth:`finish` means it was all answer. Pass ``True`` or ``False`` when the
      prompt tells you, so that a tagless answer still streams as it comes.

    Feeding the same text in any pieces yields the same joined output as feeding it whole.
    After the thought has closed, later tags are ordinary text.
    """

    __slots__ = ("_open_allowed", "_pending", "_state", "_strip_lead")

    def __init__(self, *, starts_in_thought: bool | None = None) -> None:
        if starts_in_thought is None:
            self._state = _State.UNDECIDED
        else:
            self._state = _State.REASONING if starts_in_thought else _State.CONTENT
        self._pending = ""
        # Drop whitespace at the start of each part until its first visible character.
        self._strip_lead = True
        # Whether a ``<think>`` can still open the thought (only before any thought).
        self._open_allowed = not starts_in_thought

    @property
    def in_thought(self) -> bool:
        """Whether the text fed so far ends inside the thought."""
        return self._state is _State.REASONING

    def feed(self, text: str) -> tuple[str, str]:
        """Take the next piece of text; return the reasoning and content now certain."""
        self._pending += text
        return self._drain(final=False)

    def finish(self) -> tuple[str, str]:
        """The text is complete: return whatever was held back."""
        return self._drain(final=True)

    def _take(self, text: str) -> str:
        if self._strip_lead:
            text = text.lstrip()
            if text:
                self._strip_lead = False
        return text

    def _enter(self, state: _State, rest: str) -> None:
        self._state = state
        self._pending = rest
        self._strip_lead = True
        self._open_allowed = False

    def _drain(self, *, final: bool) -> tuple[str, str]:
        reasoning: list[str] = []
        content: list[str] = []
        while True:
            pending = self._pending
            if self._state is _State.UNDECIDED:
                close = pending.find(CLOSE_TAG)
                opening = pending.find(OPEN_TAG)
                if close != -1 and (opening == -1 or close < opening):
                    reasoning.append(self._take(pending[:close].rstrip()))
                    self._enter(_State.CONTENT, pending[close + len(CLOSE_TAG) :])
                    continue
                if opening != -1:
                    content.append(self._take(pending[:opening]))
                    self._enter(_State.REASONING, pending[opening + len(OPEN_TAG) :])
                    continue
                if final:
                    content.append(self._take(pending))
                    self._pending = ""
                break
            if self._state is _State.REASONING:
                close = pending.find(CLOSE_TAG)
                if close != -1:
                    reasoning.append(self._take(pending[:close].rstrip()))
                    self._enter(_State.CONTENT, pending[close + len(CLOSE_TAG) :])
                    continue
                if final:
                    reasoning.append(self._take(pending.rstrip()))
                    self._pending = ""
                    break
                # Hold back a possible partial ``</think>`` and trailing whitespace, which
                # is dropped if the tag follows.
                body = pending[: len(pending) - _partial_tag_length(pending, CLOSE_TAG)]
                certain = body.rstrip()
                reasoning.append(self._take(certain))
                self._pending = pending[len(certain) :]
                break
            # Content.
            if self._open_allowed:
                opening = pending.find(OPEN_TAG)
                if opening != -1:
                    content.append(self._take(pending[:opening]))
                    self._enter(_State.REASONING, pending[opening + len(OPEN_TAG) :])
                    continue
                keep = 0 if final else _partial_tag_length(pending, OPEN_TAG)
                content.append(self._take(pending[: len(pending) - keep]))
                self._pending = pending[len(pending) - keep :]
                break
            content.append(self._take(pending))
            self._pending = ""
            break
        return "".join(reasoning), "".join(content)


def split_think(text: str, *, starts_in_thought: bool | None = None) -> tuple[str, str]:
    """Split a complete response into ``(reasoning, content)``; see :class:`ThinkSplitter`."""
    splitter = ThinkSplitter(starts_in_thought=starts_in_thought)
    reasoning, content = splitter.feed(text)
    tail_reasoning, tail_content = splitter.finish()
    return reasoning + tail_reasoning, content + tail_content
