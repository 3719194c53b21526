"""Prompt-count calibration: learn, per model, how far genrouter's estimate is from the count
the server reports, and how sure that makes the estimate.

A model with a known tokenizer (tiktoken's encodings, Qwen's) is counted exactly and needs
none of this. A model without one (an OpenAI-compatible server, a local GGUF) is estimated
(:func:`genrouter.tokens.estimate_text_tokens`), and such estimates can be off several-fold
for dense text (code, digits, other scripts). Each response that reports
``usage.prompt_tokens`` teaches :class:`PromptCalibration` the ratio *reported / counted* for
that model, as an exponentially weighted moving average; the next estimate for the model is
multiplied by it, and its uncertainty (the margin the context-window pre-check leaves) shrinks
from :data:`ESTIMATE_UNCERTAINTY` to what the observed ratios vary by.

Memory is bounded: at most :data:`CALIBRATION_SIZE` models are remembered, least recently
used first out. Each client has its own (on :class:`~genrouter.routing.health.Health`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from genrouter.tokens import ESTIMATE_UNCERTAINTY, TokenCount
from genrouter.types import _set_fields

if TYPE_CHECKING:
    from genrouter.types import RouteInfo

__all__ = [
    "CALIBRATED_MIN_UNCERTAINTY",
    "CALIBRATION_SIZE",
    "ESTIMATE_UNCERTAINTY",
    "FIRST_CALIBRATION_UNCERTAINTY",
    "Calibrated",
    "PromptCalibration",
]

#: Models whose ratio a client remembers (least recently used dropped first): ~100 bytes each.
CALIBRATION_SIZE: Final = 512
# ESTIMATE_UNCERTAINTY (from genrouter.tokens): the relative error assumed for an estimate of
# a model never calibrated; the pre-check leaves that fraction of the estimate free (a
# 1,000-token estimate needs 1,500 tokens of context).
#: The uncertainty after one reported count (one sample says little about the next prompt).
FIRST_CALIBRATION_UNCERTAINTY: Final = 0.25
#: The floor once several reports agree.
CALIBRATED_MIN_UNCERTAINTY: Final = 0.05
# Weight of the newest report in the moving averages.
_ALPHA: Final = 0.3
# Ratios outside this range are a server reporting nonsense (or a cached count), not a lesson.
_SANE_RATIO: Final = (0.05, 20.0)


@dataclass(slots=True)
class _Ratio:
    ratio: float
    deviation: float  # moving average of |observed - ratio| / ratio
    samples: int


# Not frozen: one is built per candidate per request, and a frozen dataclass's __init__
# costs about twice a plain one's (object.__setattr__ per field). Nothing mutates it.
@dataclass(slots=True)
class Calibrated:
    """A prompt count after calibration: ``tokens`` is what routing uses, ``counted`` what the
    tokenizer (or estimate) said, ``uncertainty`` the relative error the pre-check allows for."""

    tokens: int
    counted: int
    method: str
    uncertainty: float


class PromptCalibration:
    """Per-model ratios of reported to estimated prompt tokens (an LRU of
    :data:`CALIBRATION_SIZE` entries by default)."""

    __slots__ = ("_ratios", "_size")

    def __init__(self, size: int = CALIBRATION_SIZE) -> None:
        if size < 1:
            raise ValueError("a calibration needs room for at least one model")
        self._size = size
        self._ratios: OrderedDict[str, _Ratio] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ratios)

    def ratio(self, model_id: str) -> float | None:
        """The learned *reported / counted* ratio for *model_id*, or ``None``."""
        entry = self._ratios.get(model_id)
        return None if entry is None else entry.ratio

    def observe(self, model_id: str, counted: int, reported: int) -> None:
        """Learn from one response: genrouter *counted* this prompt, the server *reported*."""
        if counted <= 0 or reported <= 0:
            return
        observed = reported / counted
        if not _SANE_RATIO[0] <= observed <= _SANE_RATIO[1]:
            return
        entry = self._ratios.get(model_id)
        if entry is None:
            self._ratios[model_id] = _Ratio(observed, 0.0, 1)
            if len(self._ratios) > self._size:
                self._ratios.popitem(last=False)
            return
        self._ratios.move_to_end(model_id)
        error = abs(observed - entry.ratio) / entry.ratio
        entry.deviation = (1 - _ALPHA) * entry.deviation + _ALPHA * error
        entry.ratio = (1 - _ALPHA) * entry.ratio + _ALPHA * observed
        entry.samples += 1

    def calibrate(self, model_id: str, count: TokenCount) -> Calibrated:
        """*count* for *model_id* as routing should use it.

        Exact counts (a known tokenizer) pass through with no uncertainty. Estimates are
        multiplied by the learned ratio, if any, and carry their uncertainty.
        """
        if count.uncertainty == 0.0:
            return Calibrated(count.tokens, count.tokens, count.method, 0.0)
        entry = self._ratios.get(model_id)
        if entry is None:
            return Calibrated(count.tokens, count.tokens, count.method, count.uncertainty)
        self._ratios.move_to_end(model_id)
        if entry.samples == 1:
            uncertainty = FIRST_CALIBRATION_UNCERTAINTY
        else:
            uncertainty = min(
                count.uncertainty, max(CALIBRATED_MIN_UNCERTAINTY, 2 * entry.deviation)
            )
        tokens = max(1, round(count.tokens * entry.ratio))
        return Calibrated(tokens, count.tokens, f"{count.method}+calibrated", uncertainty)

    def observe_route(self, info: RouteInfo, model_id: str, reported: int) -> None:
        """Record a response's reported prompt count on *info* next to the estimate the
        decision used for *model_id*, and learn from it when that was an estimate."""
        decision = info.decision
        if decision is None:
            return
        for candidate in decision.candidates:
            if candidate.model == model_id and candidate.prompt_tokens is not None:
                _set_fields(
                    info,
                    prompt_tokens_estimated=candidate.prompt_tokens,
                    prompt_tokens_reported=reported,
                )
                if candidate.prompt_tokens_uncertainty:
                    counted = candidate.prompt_tokens_counted or candidate.prompt_tokens
                    self.observe(model_id, counted, reported)
                return
