"""Pure routing pieces: error classification, backoff, rules, decisions, health, budget."""

from __future__ import annotations

import random

import pytest

from genrouter.catalog import ModelSpec
from genrouter.config import (
    BackoffConfig,
    BudgetConfig,
    CircuitConfig,
    OfflineConfig,
    RetryConfig,
    RouteConfig,
    Rule,
)
from genrouter.errors import (
    AuthenticationError,
    BillingError,
    ContentFilteredError,
    FirstTokenTimeoutError,
    InvalidRequestError,
    MediaError,
    ProviderConnectionError,
    ProviderTimeoutError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
)
from genrouter.request import build_request
from genrouter.routing.budget import Budget
from genrouter.routing.decision import CandidateFacts, decide
from genrouter.routing.health import CircuitBreaker, LatencyStats, Reachability
from genrouter.routing.policy import Action, backoff_delay, classify, match_rule

RETRY = RetryConfig()


@pytest.mark.parametrize(
    ("error", "action"),
    [
        (RateLimitError("x", status_code=429), Action.RETRY),
        (ServerError("x", status_code=503), Action.RETRY),
        (ServerError("x", status_code=501), Action.NEXT),  # 501 not in the retry list
        (ProviderTimeoutError("x"), Action.RETRY),
        (ProviderConnectionError("x", code="connect_failed"), Action.RETRY),
        (ResponseFormatError("x"), Action.RETRY),
        (FirstTokenTimeoutError("x"), Action.NEXT),
        (AuthenticationError("x", status_code=401), Action.NEXT),
        (BillingError("x"), Action.NEXT),
        (ContentFilteredError("x"), Action.NEXT),
        (InvalidRequestError("bad messages"), Action.RAISE),
        (MediaError("missing file"), Action.RAISE),
        (KeyError("bug"), Action.RAISE),
    ],
)
def test_classify(error: BaseException, action: Action) -> None:
    assert classify(error, RETRY) is action


def test_classify_follows_the_configured_retry_list() -> None:
    only_429 = RetryConfig(on=(429,))
    assert classify(ServerError("x", status_code=503), only_429) is Action.NEXT
    assert classify(ProviderTimeoutError("x"), only_429) is Action.NEXT
    assert classify(RateLimitError("x", status_code=429), only_429) is Action.RETRY


def test_backoff_grows_caps_and_jitters() -> None:
    plain = BackoffConfig(initial_ms=100, max_ms=1000, multiplier=2, jitter=False)
    assert [backoff_delay(n, plain) for n in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.4, 0.8, 1.0]
    jittered = BackoffConfig(initial_ms=100, max_ms=1000, multiplier=2, jitter=True)
    rng = random.Random(7)
    delays = [backoff_delay(3, jittered, rng=rng) for _ in range(200)]
    assert all(0.2 <= d <= 0.4 for d in delays)
    assert len(set(delays)) > 100


def test_backoff_honours_retry_after_up_to_the_cap() -> None:
    plain = BackoffConfig(jitter=False)
    assert backoff_delay(1, plain, retry_after=2.5) == 2.5
    assert backoff_delay(1, plain, retry_after=600, retry_after_cap=30) == 30


def _req(**kw: object) -> object:
    return build_request({"model": "auto", "messages": [{"role": "user", "content": "hi"}], **kw})


def test_rules_first_match_wins() -> None:
    image_req = build_request(
        {
            "model": "auto",
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                }
            ],
        }
    )
    text_req = build_request(
        {
            "model": "auto",
            "messages": [{"role": "user", "content": "hi"}],
            "route_metadata": {"tier": "free"},
        }
    )
    rules = [
        Rule.model_validate({"when": {"input_modality": "image"}, "route": "vision"}),
        Rule.model_validate({"when": {"metadata": {"tier": "free"}}, "route": "cheap"}),
        Rule.model_validate({"when": {"min_prompt_tokens": 1000}, "route": "long"}),
    ]
    hit = match_rule(rules, image_req, image_req.needs(), 10)
    assert hit is not None and hit[1].route == "vision"
    hit = match_rule(rules, text_req, text_req.needs(), 10)
    assert hit is not None and hit[1].route == "cheap"
    plain = build_request({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    hit = match_rule(rules, plain, plain.needs(), 5000)
    assert hit is not None and hit[1].route == "long"
    assert match_rule(rules, plain, plain.needs(), 10) is None


def _spec(model_id: str, **kw: object) -> ModelSpec:
    provider, name = model_id.split("/")
    return ModelSpec.model_validate({"id": model_id, "provider": provider, "model": name, **kw})


def test_decide_ranks_by_cost_latency_and_balance() -> None:
    cheap_slow = _spec("p/cheap", input_price=0.1, output_price=0.2, prior_ttft_ms=3000)
    dear_fast = _spec("p/dear", input_price=10, output_price=20, prior_ttft_ms=100)
    facts = [
        CandidateFacts(dear_fast, prompt_tokens=100, prompt_tokens_method="estimate"),
        CandidateFacts(cheap_slow, prompt_tokens=100, prompt_tokens_method="estimate"),
    ]
    needs = build_request({"model": "x", "messages": [{"role": "user", "content": "a"}]}).needs()

    def plan(objective: str) -> tuple[str, ...]:
        route = RouteConfig.model_validate(
            {"candidates": ["p/dear", "p/cheap"], "objective": objective}
        )
        return decide(
            route_name="r", route=route, needs=needs, output_limit=100, candidates=facts
        ).plan

    assert plan("cost") == ("p/cheap", "p/dear")
    assert plan("latency") == ("p/dear", "p/cheap")
    assert plan("ordered") == ("p/dear", "p/cheap")
    decision = decide(
        route_name="r",
        route=RouteConfig(candidates=["p/dear", "p/cheap"], objective="cost"),
        needs=needs,
        output_limit=100,
        candidates=facts,
    )
    cheap = next(c for c in decision.candidates if c.model == "p/cheap")
    assert cheap.estimated_cost_usd == pytest.approx((100 * 0.1 + 100 * 0.2) / 1e6)
    assert cheap.estimated_latency_ms == pytest.approx(3000 + 100 / 50 * 1000)


def test_observed_latency_replaces_priors() -> None:
    a = _spec("p/a", prior_ttft_ms=100)
    b = _spec("p/b", prior_ttft_ms=200)
    slow_a = LatencyStats()
    slow_a.observe(5000.0, 100, 1.0)
    facts = [
        CandidateFacts(a, 10, "estimate", observed=slow_a),
        CandidateFacts(b, 10, "estimate"),
    ]
    needs = build_request({"model": "x", "messages": [{"role": "user", "content": "a"}]}).needs()
    route = RouteConfig(candidates=["p/a", "p/b"], objective="latency")
    decision = decide(route_name="r", route=route, needs=needs, output_limit=None, candidates=facts)
    assert decision.plan == ("p/b", "p/a")


def test_decide_excludes_with_reasons_and_keeps_fallbacks_last() -> None:
    text = _spec("p/text", context_window=1000, input_price=1, output_price=1)
    vision = _spec("p/vision", input_modalities=["text", "image"], input_price=1, output_price=1)
    local = _spec("local/l", local=True)
    needs = build_request(
        {
            "model": "x",
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                }
            ],
        }
    ).needs()
    facts = [
        CandidateFacts(text, 10, "estimate"),
        CandidateFacts(vision, 10, "estimate", missing_credentials="no credentials: set KEY"),
        CandidateFacts(local, 10, "estimate", fallback=True),
    ]
    route = RouteConfig(candidates=["p/text", "p/vision"], fallbacks=["local/l"])
    decision = decide(route_name="r", route=route, needs=needs, output_limit=None, candidates=facts)
    reasons = {c.model: c.excluded_because for c in decision.candidates}
    assert reasons["p/text"] == "needs image input; model takes text"
    assert reasons["p/vision"] == "no credentials: set KEY"
    assert reasons["local/l"] == "needs image input; model takes text"
    assert decision.plan == ()
    text_needs = build_request(
        {"model": "x", "messages": [{"role": "user", "content": "a"}]}
    ).needs()
    capped = RouteConfig(candidates=["p/text"], max_cost_usd=0.0001)
    decision = decide(
        route_name="r",
        route=capped,
        needs=text_needs,
        output_limit=500,
        candidates=[CandidateFacts(text, 600, "estimate")],
    )
    assert "context window" in (decision.candidates[0].excluded_because or "")
    decision = decide(
        route_name="r",
        route=capped,
        needs=text_needs,
        output_limit=200,
        candidates=[CandidateFacts(text, 10, "estimate")],
    )
    assert "exceeds the route's max" in (decision.candidates[0].excluded_because or "")
    assert "excluded" in decision.explain()


def test_circuit_breaker_states() -> None:
    breaker = CircuitBreaker(CircuitConfig(failure_threshold=3, window_s=10, cooldown_s=5))
    breaker.record_failure(0)
    breaker.record_failure(1)
    breaker.record_failure(20)  # the first two fell out of the window
    assert breaker.state(20) == "closed"
    breaker.record_failure(21)
    breaker.record_failure(22)
    assert breaker.state(22) == "open" and breaker.acquire(23) is None
    assert breaker.blocked_for(23) == pytest.approx(4)
    assert breaker.state(28) == "half_open"
    assert breaker.acquire(28) == "probe"
    assert breaker.acquire(28) is None  # only one probe at a time
    breaker.record_failure(28, "probe")  # the probe failed: open again
    assert breaker.state(30) == "open"
    assert breaker.acquire(34) == "probe"
    breaker.record_success("probe")
    assert breaker.state(34) == "closed" and breaker.acquire(34) == "closed"


def test_only_the_probe_moves_an_open_circuit() -> None:
    breaker = CircuitBreaker(CircuitConfig(failure_threshold=1, window_s=10, cooldown_s=5))
    slow = breaker.acquire(0)  # admitted while closed, finishes late
    assert slow == "closed"
    breaker.record_failure(1)
    assert breaker.state(1) == "open"
    breaker.record_success(slow)  # a late success does not close it
    assert breaker.state(2) == "open"
    breaker.record_failure(3, "closed")  # nor does a late failure extend the cooldown
    assert breaker.state(6.5) == "half_open"
    probe = breaker.acquire(6.5)
    breaker.release(probe)  # the probe ended without a verdict: another may go
    assert breaker.acquire(6.6) == "probe"


def test_reachability_marks_and_expires() -> None:
    reach = Reachability(OfflineConfig(down_for_s=10))
    reach.register("openai", "api.openai.com")
    reach.register("dashscope", "dashscope-intl.aliyuncs.com")
    # One host failing says nothing about the network, even a DNS failure.
    reach.mark_unreachable("openai", 100, whole_network=True, network_level=True)
    assert reach.down_reason("dashscope", 105, whole_network=True) is None
    assert "api.openai.com unreachable" in (
        reach.down_reason("openai", 105, whole_network=True) or ""
    )
    # A second distinct host failing at the network level does.
    reach.mark_unreachable("dashscope", 101, whole_network=True, network_level=True)
    assert "network marked down" in (reach.down_reason("other", 105, whole_network=True) or "")
    assert reach.down_reason("other", 112, whole_network=True) is None
    # Refusals on two hosts prove the network works: only the hosts are marked.
    refused = Reachability(OfflineConfig(down_for_s=10))
    refused.mark_unreachable("a", 0, whole_network=True, network_level=False)
    refused.mark_unreachable("b", 0, whole_network=True, network_level=False)
    assert refused.network_down_at is None
    reach.mark_unreachable("vllm", 200, whole_network=False)
    assert reach.down_reason("openai", 201, whole_network=True) is None
    assert "vllm unreachable" in (reach.down_reason("vllm", 201, whole_network=False) or "")
    # Providers on one host share its mark.
    reach.register("compat", "api.openai.com")
    reach.mark_unreachable("openai", 300, whole_network=True)
    assert "api.openai.com" in (reach.down_reason("compat", 301, whole_network=True) or "")
    off = Reachability(OfflineConfig(enabled=False))
    off.mark_unreachable("openai", 0, whole_network=True)
    assert off.down_reason("openai", 1, whole_network=True) is None


def test_network_level_connect_failures_are_told_from_refusals() -> None:
    import socket

    from genrouter.errors import ProviderConnectionError
    from genrouter.routing.policy import is_network_level

    def failure(cause: BaseException, text: str = "could not connect") -> ProviderConnectionError:
        error = ProviderConnectionError(text, code="connect_failed")
        error.__cause__ = cause
        return error

    assert is_network_level(failure(socket.gaierror(-3, "Temporary failure in name resolution")))
    assert is_network_level(failure(OSError(101, "Network is unreachable")))
    assert not is_network_level(failure(ConnectionRefusedError(111, "Connection refused")))
    assert is_network_level(failure(RuntimeError("x"), "[Errno -2] Name or service not known"))
    lost = ProviderConnectionError("reset", code="connection_lost")
    assert not is_network_level(lost)


def test_budget_reserve_settle_release_and_window() -> None:
    budget = Budget(BudgetConfig(limit_usd=1.0, window_s=60))
    r1 = budget.reserve(0.3)
    assert budget.remaining_usd(0) == pytest.approx(0.7)
    budget.settle(r1, 0.1, now=0)
    assert budget.remaining_usd(0) == pytest.approx(0.9)
    r2 = budget.reserve(0.5)
    budget.release(r2)
    budget.release(r2)  # idempotent
    assert budget.remaining_usd(1) == pytest.approx(0.9)
    assert budget.remaining_usd(61) == pytest.approx(1.0)  # the spend left the window


def test_every_candidate_is_costed_for_the_same_output_length() -> None:
    cheap = _spec("p/cheap", input_price=0.2, output_price=0.6)
    dear = _spec("p/dear", input_price=0.8, output_price=3.2)
    terse = LatencyStats()
    terse.observe(100.0, 6, 0.1)  # the dear model was seen writing 6 tokens once
    facts = [
        CandidateFacts(dear, 20, "estimate", observed=terse),
        CandidateFacts(cheap, 20, "estimate"),
    ]
    needs = build_request({"model": "x", "messages": [{"role": "user", "content": "a"}]}).needs()
    route = RouteConfig(candidates=["p/dear", "p/cheap"], objective="cost")
    decision = decide(route_name="r", route=route, needs=needs, output_limit=None, candidates=facts)
    assert decision.expected_output_tokens == 6
    assert decision.plan == ("p/cheap", "p/dear")  # not fooled by one short observation
