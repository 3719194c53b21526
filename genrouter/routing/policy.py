"""Pure policy: which route a request takes, what to do after an error, how long to wait.

Nothing here does I/O or reads a clock; the executor feeds in the facts and carries out the
answer, and tests check each rule with plain values.
"""

from __future__ import annotations

import enum
import errno
import random
import socket
from collections.abc import Callable, Sequence

from genrouter.config import BackoffConfig, RetryConfig, Rule
from genrouter.errors import (
    AttemptTimeoutError,
    AuthenticationError,
    BadRequestError,
    BillingError,
    ContentFilteredError,
    DeadlineExceededError,
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
    StreamIdleTimeoutError,
    StructuredOutputError,
    UnsupportedInputError,
)
from genrouter.request import ChatRequest, Needs

__all__ = [
    "BROKEN_BODY_CODES",
    "INCOMPLETE_STREAM",
    "POOL_TIMEOUT",
    "Action",
    "backoff_delay",
    "classify",
    "counts_against_health",
    "is_connect_failure",
    "is_network_level",
    "match_rule",
    "retry_delay",
    "waits_out_retry_after",
]

# A 200 whose body is no answer at all (empty, not an event stream, an HTML page): the server
# will not do better on a retry, so the next candidate gets the request at once.
BROKEN_BODY_CODES = frozenset({"empty_body", "not_event_stream", "not_json"})
# A stream that ended (bare ``[DONE]``, clean close) before its finish_reason arrived.
INCOMPLETE_STREAM = "incomplete_stream"
# A wait for a free connection in genrouter's own pool: our congestion, not the model's.
POOL_TIMEOUT = "pool_timeout"


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
    StructuredOutputError,  # the same prompt to the same model tends to repeat the mistake
)


def classify(
    error: BaseException, retry: RetryConfig, *, on_content_filter: str = "next"
) -> Action:
    """Decide between retrying the candidate, moving on, or failing the request.

    *on_content_filter* is the route's policy for a content-filter refusal: ``"next"`` (another
    vendor's filter may allow it) or ``"raise"`` (the refusal is the answer).
    """
    if isinstance(error, ContentFilteredError) and on_content_filter == "raise":
        return Action.RAISE
    if isinstance(error, ProviderError) and error.should_retry is not None:
        # A provider's explicit word (OpenAI's ``x-should-retry`` header) wins: ``true``
        # retries this candidate, ``false`` moves on without retrying it.
        return Action.RETRY if error.should_retry else Action.NEXT
    if isinstance(error, (*_MOVE_ON, FirstTokenTimeoutError, AttemptTimeoutError)):
        # A slow first token or a hung attempt says "this model is slow now": waiting on it
        # again only doubles the delay the caller sees, so the next candidate gets the request.
        return Action.NEXT
    if isinstance(error, DeadlineExceededError | StreamIdleTimeoutError):
        return Action.NEXT
    if isinstance(error, ResponseFormatError) and error.code in BROKEN_BODY_CODES:
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


def counts_against_health(error: BaseException, retry: RetryConfig) -> bool:
    """Whether a failed attempt counts against the model's circuit breaker.

    The request's own deadline (often a caller's short ``timeout=``) and a wait for
    genrouter's own connection pool say nothing about the model; a transient failure, a
    failed connect, a hung attempt, a stall or a broken 200 do. Refusals (400, 401…) are about
    the request or the account and do not trip the breaker either.
    """
    if isinstance(error, DeadlineExceededError):
        return False
    if isinstance(error, ProviderError) and error.code == POOL_TIMEOUT:
        return False
    if isinstance(error, FirstTokenTimeoutError | AttemptTimeoutError | StreamIdleTimeoutError):
        return True
    if isinstance(error, ResponseFormatError) and error.code in BROKEN_BODY_CODES:
        return True
    return is_connect_failure(error) or classify(error, retry) is Action.RETRY


def waits_out_retry_after(retry_after: float, retry: RetryConfig, time_left: float) -> bool:
    """Whether a server's ``Retry-After`` is short enough to wait out on the same model.

    A longer one (beyond ``retry.max_retry_after_s``, or past the time left) is routing
    information instead: move on now and cool the model down until then.
    """
    return retry_after <= retry.max_retry_after_s and retry_after < time_left


def retry_delay(
    error: BaseException,
    attempt: int,
    retry: RetryConfig,
    *,
    time_left: float,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before trying the same candidate again after *error* ended try number
    *attempt*, or ``None``: do not retry it (move on, or raise, per :func:`classify`).

    A retry needs an error that :func:`classify` retries, a try left under ``retry.attempts``
    and a backoff (:func:`backoff_delay`: the server's ``Retry-After`` if it sent one) that
    ends before the request's *time_left* does. The executor hands this answer to tenacity as
    its retry decision and its wait.
    """
    if classify(error, retry) is not Action.RETRY or attempt >= retry.attempts:
        return None
    retry_after = getattr(error, "retry_after", None)
    delay = backoff_delay(
        attempt,
        retry.backoff,
        retry_after=retry_after,
        retry_after_cap=retry.retry_after_cap_s,
        rng=rng,
    )
    return None if delay >= time_left else delay


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


# What a connect failure says about the network. A refusal or reset proves a host answered;
# these are what a machine without a network sees (the texts come from getaddrinfo/strerror).
_NETWORK_ERRNOS = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN})
_NETWORK_TEXTS = (
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname",
    "no address associated",
    "network is unreachable",
    "no route to host",
    "connecttimeout",
    "timed out",
)


def is_network_level(error: BaseException) -> bool:
    """Whether a connect failure is of the kind a down network causes (DNS, no route, timeout)
    rather than one a working network causes (connection refused)."""
    if not is_connect_failure(error):
        return False
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, socket.gaierror | TimeoutError):
            return True
        if isinstance(seen, OSError) and seen.errno in _NETWORK_ERRNOS:
            return True
        if isinstance(seen, ConnectionRefusedError):
            return False
        seen = seen.__cause__ or seen.__context__
    text = str(error).lower()
    return any(t in text for t in _NETWORK_TEXTS)


def _rule_matches(
    rule: Rule, request: ChatRequest, needs: Needs, prompt_tokens: int | Callable[[Rule], int]
) -> bool:
    when = rule.when
    if when.input_modality is not None:
        media = needs.modalities - {"text"}
        if when.input_modality == "text" and media:
            return False
        if when.input_modality != "text" and when.input_modality not in media:
            return False
    if when.min_prompt_tokens is not None or when.max_prompt_tokens is not None:
        tokens = prompt_tokens if isinstance(prompt_tokens, int) else prompt_tokens(rule)
        if when.min_prompt_tokens is not None and tokens < when.min_prompt_tokens:
            return False
        if when.max_prompt_tokens is not None and tokens > when.max_prompt_tokens:
            return False
    if when.tools is not None and when.tools != needs.tools:
        return False
    if when.json_output is not None and when.json_output != (
        needs.json_object or needs.json_schema
    ):
        return False
    return all(request.route_metadata.get(k) == v for k, v in when.metadata.items())


def match_rule(
    rules: Sequence[Rule],
    request: ChatRequest,
    needs: Needs,
    prompt_tokens: int | Callable[[Rule], int],
) -> tuple[int, Rule] | None:
    """The first rule whose conditions all hold, with its index, or ``None``.

    *prompt_tokens* is the prompt's count, or a function giving the count a rule tests (the
    planner's: in the rule's tokenizer, counted only for rules with token thresholds).
    """
    for index, rule in enumerate(rules):
        if _rule_matches(rule, request, needs, prompt_tokens):
            return index, rule
    return None
