"""Retries on tenacity with genrouter's pure policy (issue 12, item 6).

The first try of a candidate is a plain call; tenacity's ``AsyncRetrying`` is built only
after that try failed with an error the policy retries, and its retry decision, wait and stop
come from :func:`genrouter.routing.policy.retry_delay` and ``retry.attempts``.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import tenacity

from genrouter import AsyncClient, RateLimitError, ServerError
from genrouter.config import RetryConfig
from genrouter.params import MessageParam
from genrouter.routing.policy import backoff_delay, retry_delay
from genrouter.types import RouteInfo
from tests.support import ScriptedProvider, Step

HELLO: list[MessageParam] = [{"role": "user", "content": "Say hello"}]


class CountingRetrying(tenacity.AsyncRetrying):
    """tenacity's own class, counting how often the executor builds one."""

    built = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        type(self).built += 1
        super().__init__(*args, **kwargs)


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> type[CountingRetrying]:
    CountingRetrying.built = 0
    monkeypatch.setattr(tenacity, "AsyncRetrying", CountingRetrying)
    return CountingRetrying


def make_client(**retry: Any) -> tuple[AsyncClient, ScriptedProvider]:
    retry.setdefault("attempts", 3)
    retry.setdefault("backoff", {"initial_ms": 1, "max_ms": 2})
    config = {
        "providers": {n: {"type": "custom"} for n in ("alpha", "beta")},
        "models": {"alpha/a1": {}, "beta/b1": {}},
        "routes": {"default": {"candidates": ["alpha/a1", "beta/b1"], "retry": retry}},
    }
    alpha = ScriptedProvider("alpha")
    providers = {"alpha": alpha, "beta": ScriptedProvider("beta")}
    return AsyncClient(config, providers=providers, env={}, seed=1), alpha


def outcomes(info: RouteInfo | None) -> list[tuple[str, str]]:
    assert info is not None
    return [(a.model, a.outcome) for a in info.attempts]


async def test_a_first_try_that_succeeds_never_builds_a_retrying(
    built: type[CountingRetrying],
) -> None:
    client, _ = make_client()
    answer = await client.chat.completions.create(model="default", messages=HELLO)
    assert outcomes(answer.route) == [("alpha/a1", "ok")]
    assert built.built == 0


async def test_one_retry_runs_under_tenacity(built: type[CountingRetrying]) -> None:
    client, alpha = make_client()
    alpha.script("a1", Step(error=ServerError("boom", status_code=503)))
    answer = await client.chat.completions.create(model="default", messages=HELLO)
    assert outcomes(answer.route) == [("alpha/a1", "error"), ("alpha/a1", "ok")]
    assert built.built == 1
    assert len(alpha.calls) == 2


async def test_tenacity_stops_at_retry_attempts_then_the_next_candidate_answers(
    built: type[CountingRetrying],
) -> None:
    client, alpha = make_client(attempts=4)
    alpha.script("a1", *[Step(error=ServerError("boom", status_code=503))] * 4)
    answer = await client.chat.completions.create(model="default", messages=HELLO)
    assert outcomes(answer.route) == [("alpha/a1", "error")] * 4 + [("beta/b1", "ok")]
    assert built.built == 1
    route = answer.route
    assert route is not None
    # Each failed try records the wait the policy chose; the last one chose none.
    delays = [a.retry_delay_ms for a in route.attempts[:4]]
    assert all(d is not None and 0.5 <= d <= 2.0 for d in delays[:3]), delays
    assert delays[3] is None


async def test_retry_after_is_the_wait_tenacity_sleeps(built: type[CountingRetrying]) -> None:
    client, alpha = make_client()
    alpha.script(
        "a1",
        Step(error=RateLimitError("slow down", retry_after=0.02)),
        Step(error=RateLimitError("slow down", retry_after=0.03)),
    )
    answer = await client.chat.completions.create(model="default", messages=HELLO)
    route = answer.route
    assert outcomes(route) == [("alpha/a1", "error")] * 2 + [("alpha/a1", "ok")]
    assert route is not None
    assert [a.retry_delay_ms for a in route.attempts[:2]] == [20.0, 30.0]
    assert built.built == 1


async def test_a_retry_after_past_max_retry_after_cools_down_without_tenacity(
    built: type[CountingRetrying],
) -> None:
    client, alpha = make_client(max_retry_after_s=1.0)
    alpha.script("a1", Step(error=RateLimitError("slow down", retry_after=60)))
    answer = await client.chat.completions.create(model="default", messages=HELLO)
    assert outcomes(answer.route) == [("alpha/a1", "error"), ("beta/b1", "ok")]
    assert built.built == 0
    assert client.health.cooling_reason("alpha/a1", client._clock()) is not None


async def test_a_wait_longer_than_the_time_left_moves_on(built: type[CountingRetrying]) -> None:
    client, alpha = make_client(max_retry_after_s=30.0)
    alpha.script("a1", Step(error=RateLimitError("slow down", retry_after=20)))
    answer = await client.chat.completions.create(model="default", messages=HELLO, timeout=5.0)
    assert outcomes(answer.route) == [("alpha/a1", "error"), ("beta/b1", "ok")]
    assert built.built == 0


def test_retry_delay_is_pure_policy() -> None:
    retry = RetryConfig(attempts=3, backoff={"initial_ms": 100, "max_ms": 1000, "jitter": False})
    boom = ServerError("boom", status_code=503)
    assert retry_delay(boom, 1, retry, time_left=10.0) == pytest.approx(0.1)
    assert retry_delay(boom, 2, retry, time_left=10.0) == pytest.approx(0.2)
    assert retry_delay(boom, 3, retry, time_left=10.0) is None  # out of tries
    assert retry_delay(boom, 1, retry, time_left=0.05) is None  # past the deadline
    assert retry_delay(ValueError("bug"), 1, retry, time_left=10.0) is None
    slow = RateLimitError("slow down", retry_after=2.5)
    assert retry_delay(slow, 1, retry, time_left=10.0) == 2.5
    capped = RetryConfig(attempts=3, retry_after_cap_s=1.0)
    assert retry_delay(slow, 1, capped, time_left=10.0) == 1.0
    jittered = RetryConfig(attempts=3)
    expected = backoff_delay(1, jittered.backoff, rng=random.Random(7))
    assert retry_delay(boom, 1, jittered, time_left=10.0, rng=random.Random(7)) == expected
