"""What one attempt holds and what a stream delivered: the executor's bookkeeping objects.

:class:`Lease` is everything an attempt holds (its circuit-breaker ticket and its budget
reservation) and settles them exactly once, whichever way the attempt ends: success, failure,
an interruption charged for what it delivered, or a release (cancelled, moved on).
:class:`StreamProgress` follows one attempt's stream (did its ``finish_reason`` arrive, what
usage it reported) and :class:`Delivered` what the caller has received across attempts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from genrouter.catalog import ModelSpec
from genrouter.routing.budget import Budget, Reservation
from genrouter.routing.health import CircuitBreaker, Ticket
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


@dataclass(slots=True)
class StreamProgress:
    """One attempt's stream as it passes: finish reason, reported usage, text.

    Servers differ in where usage goes: OpenAI sends one final chunk with ``choices=[]``;
    some servers repeat running totals on every chunk. Usage is a total, never summed: a
    chunk's usage is held back and only the latest reaches the caller, once, at the end
    (:meth:`end`), so the caller's sum over chunks is right for every server.
    """

    finished: bool = False
    usage: Usage | None = None
    text: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    _pending: ChatCompletionChunk | None = None
    _template: ChatCompletionChunk | None = None

    def take(self, chunk: ChatCompletionChunk) -> tuple[ChatCompletionChunk, ...]:
        """The chunks to hand the caller now for *chunk* from the provider."""
        for choice in chunk.choices:
            if choice.index == 0:
                if choice.finish_reason is not None:
                    self.finished = True
                    self.finish_reason = choice.finish_reason
                if choice.delta.content:
                    self.text.append(choice.delta.content)
        if self._template is None:
            self._template = chunk
        if chunk.usage is None:
            return (chunk,)
        self.usage = chunk.usage
        earlier = self._pending
        out: tuple[ChatCompletionChunk, ...] = ()
        if earlier is not None and earlier.choices:
            out = (earlier.model_copy(update={"usage": None}),)
        if chunk.choices:
            out = (*out, chunk.model_copy(update={"usage": None}))
            self._pending = chunk.model_copy(update={"choices": []})
        else:
            self._pending = chunk
        return out

    def end(self, estimated: Usage | None = None) -> ChatCompletionChunk | None:
        """The closing usage chunk: the server's last usage, else *estimated* (if given)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            return pending
        if estimated is None or self._template is None:
            return None
        return self._template.model_copy(update={"choices": [], "usage": estimated})


@dataclass(slots=True)
class Delivered:
    """What a stream has handed to the caller so far (for interruption and resume)."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    other_output: bool = False  # tool calls, refusals, extra choices: not resumable as text
    finished: bool = False  # a finish_reason reached the caller

    def add(self, chunk: ChatCompletionChunk) -> None:
        for choice in chunk.choices:
            delta = choice.delta
            if choice.index != 0:
                self.other_output = self.other_output or chunk_has_output(chunk)
                continue
            if delta.content:
                self.text.append(delta.content)
            if delta.reasoning_content:
                self.reasoning.append(delta.reasoning_content)
            if delta.tool_calls or delta.refusal:
                self.other_output = True
            if choice.finish_reason is not None:
                self.finished = True

    @property
    def any_output(self) -> bool:
        return bool(self.text or self.reasoning or self.other_output)

    def resumable(self) -> bool:
        """Whether a continuation can pick up from here: plain answer text only.

        Reasoning would be thought again and re-sent; tool-call arguments would be
        concatenated into invalid JSON. Those streams raise instead of resuming.
        """
        return bool(self.text) and not self.reasoning and not self.other_output


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
