"""What one attempt holds and what a stream delivered: the executor's bookkeeping objects.

:class:`Lease` is everything an attempt holds (its circuit-breaker ticket and its budget
reservation) and settles them exactly once, whichever way the attempt ends: success, failure,
an interruption charged for what it delivered, or a release (cancelled, moved on).
:class:`StreamProgress` follows one attempt's stream (did its ``finish_reason`` arrive, what
usage it reported) and :class:`Delivered` what the caller has received across attempts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from genrouter.catalog import ModelSpec
from genrouter.routing.budget import Budget, Reservation
from genrouter.routing.health import CircuitBreaker, Ticket
from genrouter.streaming import CompletionAccumulator
from genrouter.types import ChatCompletionChunk, Usage

__all__ = ["Delivered", "Lease", "StreamProgress", "chunk_has_output"]


def chunk_has_output(chunk: ChatCompletionChunk) -> bool:
    """Whether a chunk carries anything the caller would see (text, reasoning, tool calls)."""
    for choice in chunk.choices:
        delta = choice.delta
        if delta.content or delta.reasoning_content or delta.tool_calls or delta.refusal:
            return True
    return False


@dataclass(slots=True)
class Lease:
    """The circuit ticket and budget reservation of one attempt, settled exactly once.

    Every exit of an attempt ends in one of :meth:`succeed`, :meth:`fail`, :meth:`charge` or
    :meth:`release`; later calls are no-ops, so a ``finally`` can always call
    :meth:`release` as a safety net.
    """

    spec: ModelSpec
    circuit: CircuitBreaker
    ticket: Ticket
    budget: Budget | None
    reservation: Reservation | None
    clock: Callable[[], float]
    started: float
    done: bool = False

    def _budget_settle(self, cost: float | None, *, release: bool) -> None:
        if self.budget is None or self.reservation is None:
            return
        if release:
            self.budget.release(self.reservation)
        else:
            self.budget.settle(self.reservation, cost, self.clock())

    def succeed(self, cost: float | None) -> None:
        """The attempt answered: close the circuit ticket, spend the actual cost."""
        if not self.done:
            self.done = True
            self.circuit.record_success(self.ticket)
            self._budget_settle(cost, release=False)

    def fail(self, *, counts: bool, cost: float | None = None) -> None:
        """The attempt failed. *counts*: against the model's health. A *cost* is charged
        (an interrupted stream pays for what it delivered); without one nothing is spent."""
        if not self.done:
            self.done = True
            if counts:
                self.circuit.record_failure(self.clock(), self.ticket)
            else:
                self.circuit.release(self.ticket)
            self._budget_settle(cost, release=cost is None)

    def charge(self, cost: float | None) -> None:
        """No verdict on the model (the caller stopped reading), but tokens were made:
        spend *cost*, or the reservation when the cost is unknown."""
        if not self.done:
            self.done = True
            self.circuit.release(self.ticket)
            self._budget_settle(cost, release=False)

    def release(self) -> None:
        """No verdict and nothing spent (cancelled before an answer, skipped)."""
        if not self.done:
            self.done = True
            self.circuit.release(self.ticket)
            self._budget_settle(None, release=True)


class Delivered(CompletionAccumulator):
    """What a stream has handed to the caller so far, across attempts (interruption, resume).

    It is the stream's one accumulator: the caller's :class:`~genrouter.AsyncChatStream`
    reads its final completion from the same object, so each chunk is folded in once.
    """

    __slots__ = ()

    @property
    def text_parts(self) -> list[str]:
        """The answer text of choice 0, piece by piece."""
        parts = self._choices.get(0)
        return parts.content if parts is not None else []

    @property
    def reasoning_parts(self) -> list[str]:
        parts = self._choices.get(0)
        return parts.reasoning if parts is not None else []

    @property
    def other_output(self) -> bool:
        """Tool calls, refusals, extra choices: output that cannot be resumed as text."""
        parts = self._choices.get(0)
        if parts is not None and (parts.tool_calls or parts.refusal):
            return True
        return any(index != 0 for index in self._choices)

    @property
    def any_output(self) -> bool:
        return bool(self.text_parts or self.reasoning_parts or self.other_output)

    def resumable(self) -> bool:
        """Whether a continuation can pick up from here: plain answer text only.

        Reasoning would be thought again and re-sent; tool-call arguments would be
        concatenated into invalid JSON. Those streams raise instead of resuming.
        """
        return bool(self.text_parts) and not self.reasoning_parts and not self.other_output


@dataclass(slots=True)
class StreamProgress:
    """One attempt's stream as it passes: finish reason, reported usage, text.

    Servers differ in where usage goes: OpenAI sends one final chunk with ``choices=[]``;
    some servers repeat running totals on every chunk. Usage is a total, never summed: a
    chunk's usage is held back and only the latest reaches the caller, once, at the end
    (:meth:`end`), so the caller's sum over chunks is right for every server.
    """

    delivered: Delivered
    finished: bool = False
    finish_reason: str | None = None  # choice 0's, once it arrived (for telemetry)
    usage: Usage | None = None
    _start: int = 0  # how much of delivered.text_parts came before this attempt
    _pending: ChatCompletionChunk | None = None
    _template: ChatCompletionChunk | None = None

    def __post_init__(self) -> None:
        self._start = len(self.delivered.text_parts)

    @property
    def text(self) -> list[str]:
        """This attempt's answer text (choice 0), piece by piece."""
        return self.delivered.text_parts[self._start :]

    def take(self, chunk: ChatCompletionChunk) -> ChatCompletionChunk | None:
        """The chunk to hand the caller now for *chunk* from the provider (``None``: none).

        One pass over the chunk: it is folded into :attr:`delivered` here, its usage held
        back for :meth:`end`.
        """
        if self.delivered.add_choices(chunk):
            self.finished = True
            for choice in chunk.choices:
                if choice.index == 0 and choice.finish_reason is not None:
                    self.finish_reason = choice.finish_reason
        if self._template is None:
            self._template = chunk
        usage = chunk.usage
        if usage is None:
            return chunk
        self.usage = usage
        if chunk.choices:
            self._pending = chunk.model_copy(update={"choices": []})
            return chunk.model_copy(update={"usage": None})
        self._pending = chunk
        return None

    def end(self, estimated: Usage | None = None) -> ChatCompletionChunk | None:
        """The closing usage chunk: the server's last usage, else *estimated* (if given).

        Its usage is added to :attr:`delivered` (summed over a resumed stream's attempts).
        """
        pending, self._pending = self._pending, None
        if pending is None:
            if estimated is None or self._template is None:
                return None
            pending = self._template.model_copy(update={"choices": [], "usage": estimated})
        if pending.usage is not None:
            self.delivered.add_usage(pending.usage)
        return pending


# An overlap this short at the seam may be chance ("a", " the"); longer ones are repeats.
_MIN_OVERLAP = 6


@dataclass(slots=True)
class SeamTrimmer:
    """Removes text a continuation repeats from what the caller already has.

    A provider without prefill is asked to continue by instruction; a model may still start
    its answer over, or repeat the last words. The first text of the continuation is held
    while it could still be such a repeat, then passed on without the overlap, so the caller's
    text is never repeated and the rest, whitespace at the seam included, is kept exactly.
    """

    delivered: str
    held: str = ""
    done: bool = False

    def feed(self, text: str) -> str:
        """The part of *text* to hand on now ("" while still deciding)."""
        if self.done:
            return text
        seen = self.held + text
        delivered = self.delivered
        if seen in delivered:
            if delivered.endswith(seen) and len(seen) >= _MIN_OVERLAP:
                self.done, self.held = True, ""  # the tail (or all) was repeated: drop it
                return ""
            self.held = seen  # may still be a restart or a repeated tail: hold
            return ""
        self.done, self.held = True, ""
        if seen.startswith(delivered):
            return seen[len(delivered) :]
        for size in range(min(len(seen), len(delivered)), _MIN_OVERLAP - 1, -1):
            if delivered.endswith(seen[:size]):
                return seen[size:]
        return seen

    def finish(self) -> str:
        """At the stream's end: held text that repeated the caller's is dropped; a short
        piece that only happened to occur in it is the answer's own."""
        held, self.done, self.held = self.held, True, ""
        return "" if len(held) >= _MIN_OVERLAP else held

    def trim(self, chunk: ChatCompletionChunk) -> ChatCompletionChunk:
        """*chunk* with its answer text trimmed (a finish reason releases anything held)."""
        if self.done or not chunk.choices:
            return chunk
        choice = chunk.choices[0]
        text = choice.delta.content
        if text is None and choice.finish_reason is None:
            return chunk
        out = self.feed(text or "")
        if choice.finish_reason is not None:
            out += self.finish()
        delta = choice.delta.model_copy(update={"content": out or None})
        first = choice.model_copy(update={"delta": delta})
        return chunk.model_copy(update={"choices": [first, *chunk.choices[1:]]})
