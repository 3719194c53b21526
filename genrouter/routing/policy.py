"""Pure policy: which route a request takes, what to do after an error, how long to wait.

Nothing here does I/O or reads a clock; the executor feeds in the facts and carries out the
answer, and tests check each rule with plain values.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence

from genrouter.config import BackoffConfig, RetryConfig, Rule
from genrouter.errors import (
    AuthenticationError,
    BadRequestError,
    BillingError,
    ContentFilteredError,
    FirstTokenTimeoutError,
    LocalModelError,
    MediaError,
    NotFoundError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    UnsupportedInputError,
)
from genrouter.request import ChatRequest, Needs

__all__ = ["Action", "backoff_delay", "classify", "is_connect_failure", "match_rule"]


class Action(enum.Enum):
    """What the executor does after a failed attempt."""

    RETRY = "retry"  # same candidate again, after a backoff
    NEXT = "next"  # give up on this candidate, try the next one
    RAISE = "raise"  # no candidate can help: the request itself is at fault


# Errors that say "this model/account will not do it": another candidate may.
_MOVE_ON = (
    AuthenticationError,
    PermissionDeniedError,
    BillingError,
    ContentFilteredError,
    NotFoundError,
    BadRequestError,
    UnsupportedInputError,
    LocalModelError,
)


def classify(error: BaseException, retry: RetryConfig) -> Action:
    """Decide between retrying the candidate, moving on, or failing the request."""
    if isinstance(error, (*_MOVE_ON, FirstTokenTimeoutError)):
        # A slow first token says "this model is slow now": waiting on it again only doubles
        # the delay the caller sees, so the next candidate gets the request.
        return Action.NEXT
    if isinstance(error, MediaError) or not isinstance(error, ProviderError):
        # Malformed messages, unreadable images, bugs: every model would fail the same way,
        # and a provider that raises outside the error tree has a bug worth seeing.
        return Action.RAISE
    if isinstance(error, ProviderConnectionError):
        trigger: int | str | None = "connection"
    elif isinstance(error, ProviderTimeoutError):
        trigger = "timeout"
    elif isinstance(error, RateLimitError):
        trigger = error.status_code or 429
    elif isinstance(error, ServerError | ResponseFormatError):
        trigger = error.status_code or 500
    else:
        trigger = error.status_code
    return Action.RETRY if trigger is not None and trigger in retry.on else Action.NEXT


def is_connect_failure(error: BaseException) -> bool:
    """Whether *error* means the provider could not be reached at all (refused, DNS, route)."""
    return isinstance(error, ProviderConnectionError) and error.code == "connect_failed"


def backoff_delay(
    attempt: int,
    backoff: BackoffConfig,
    *,
    retry_after: float | None = None,
    retry_after_cap: float = 30.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number *attempt* (1 = the first retry).

    A server's ``Retry-After`` wins, capped at *retry_after_cap*; otherwise exponential growth
    from ``initial_ms`` to ``max_ms``, with jitter drawn from [50 %, 100 %] of the step so that
    clients that failed together do not retry together.
    """
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, retry_after_cap)
    step = min(backoff.max_ms, backoff.initial_ms * backoff.multiplier ** max(attempt - 1, 0))
    if backoff.jitter:
        step *= 0.5 + 0.5 * (rng or random).random()
    return step / 1000.0


def _rule_matches(rule: Rule, request: ChatRequest, needs: Needs, prompt_tokens: int) -> bool:
    when = rule.when
    if when.input_modality is not None:
        media = needs.modalities - {"text"}
        if when.input_modality == "text" and media:
            return False
        if when.input_modality != "text" and when.input_modality not in media:
            return False
    if when.min_prompt_tokens is not None and prompt_tokens < when.min_prompt_tokens:
        return False
    if when.max_prompt_tokens is not None and prompt_tokens > when.max_prompt_tokens:
        return False
    if when.tools is not None and when.tools != needs.tools:
        return False
    if when.json_output is not None and when.json_output != (
        needs.json_object or needs.json_schema
    ):
        return False
    return all(request.route_metadata.get(k) == v for k, v in when.metadata.items())


def match_rule(
    rules: Sequence[Rule], request: ChatRequest, needs: Needs, prompt_tokens: int
) -> tuple[int, Rule] | None:
    """The first rule whose conditions all hold, with its index, or ``None``."""
    for index, rule in enumerate(rules):
        if _rule_matches(rule, request, needs, prompt_tokens):
            return index, rule
    return None
