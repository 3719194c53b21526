"""Estimates that know their error: calibration from reported usage, uncertainty, margin (issue 15).

For a model with no declared tokenizer on an OpenAI-compatible server, a dense prompt the
server counted at 1,046 tokens was estimated at 269: the context-window pre-check passed and
the server rejected the prompt.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from genrouter import AsyncClient, MessageParam
from genrouter.catalog import ModelSpec
from genrouter.config import RouteConfig
from genrouter.request import Needs
from genrouter.routing.calibration import (
    CALIBRATED_MIN_UNCERTAINTY,
    CALIBRATION_SIZE,
    FIRST_CALIBRATION_UNCERTAINTY,
    PromptCalibration,
)
from genrouter.routing.decision import CandidateFacts, decide
from genrouter.routing.explain import render_route_info
from genrouter.testing import FakeLLMServer, Reply
from genrouter.tokens import ESTIMATE_UNCERTAINTY, TokenCount
from tests.real_servers import LlamaServer


def _symbols(count: int) -> str:
    """Punctuation soup: four characters a token by the estimate, ~1.5 a token for Gemma."""
    rng = random.Random(7)
    return "".join(rng.choice("!@#$%^&*()[]{}<>?/|~") for _ in range(count))


DENSE: list[MessageParam] = [{"role": "user", "content": _symbols(1000)}]


def test_calibration_learns_a_running_ratio() -> None:
    calibration = PromptCalibration()
    estimate = TokenCount(269, "estimate", ESTIMATE_UNCERTAINTY)
    assert calibration.calibrate("m", estimate).uncertainty == ESTIMATE_UNCERTAINTY
    calibration.observe("m", 269, 1046)
    first = calibration.calibrate("m", estimate)
    assert (first.tokens, first.counted, first.method) == (1046, 269, "estimate+calibrated")
    assert first.uncertainty == FIRST_CALIBRATION_UNCERTAINTY
    for _ in range(20):  # consistent reports: the ratio holds, the uncertainty shrinks
        calibration.observe("m", 269, 1046)
    steady = calibration.calibrate("m", estimate)
    assert steady.tokens == 1046 and steady.uncertainty == CALIBRATED_MIN_UNCERTAINTY
    calibration.observe("m", 100, 200)  # a different prompt: the ratio moves part of the way
    ratio = calibration.ratio("m")
    assert ratio is not None and 2.0 < ratio < 1046 / 269


def test_exact_counts_are_left_alone_and_nonsense_is_ignored() -> None:
    calibration = PromptCalibration()
    calibration.observe("m", 100, 150)
    exact = calibration.calibrate("m", TokenCount(100, "tiktoken:o200k_base"))
    assert (exact.tokens, exact.uncertainty) == (100, 0.0)
    calibration.observe("x", 100, 0)
    calibration.observe("x", 100, 100_000)  # 1000x: a server bug, not a lesson
    calibration.observe("x", 0, 10)
    assert calibration.ratio("x") is None


def test_memory_is_bounded() -> None:
    calibration = PromptCalibration(size=3)
    for name in ("a", "b", "c"):
        calibration.observe(name, 10, 20)
    calibration.calibrate("a", TokenCount(10, "estimate", 0.5))  # a is used again
    calibration.observe("d", 10, 20)
    assert len(calibration) == 3
    assert calibration.ratio("b") is None and calibration.ratio("a") == 2.0
    assert PromptCalibration()._size == CALIBRATION_SIZE
    with pytest.raises(ValueError):
        PromptCalibration(size=0)


def _facts(tokens: int, uncertainty: float, window: int = 500) -> CandidateFacts:
    spec = ModelSpec.model_validate(
        {"id": "p/m", "provider": "p", "model": "m", "context_window": window}
    )
    return CandidateFacts(
        spec,
        tokens,
        "estimate",
        prompt_tokens_counted=tokens,
        prompt_tokens_uncertainty=uncertainty,
    )


@pytest.mark.parametrize(("uncertainty", "eligible"), [(0.0, True), (0.5, False)])
def test_the_pre_check_leaves_the_estimate_s_margin(uncertainty: float, eligible: bool) -> None:
    decision = decide(
        route_name="r",
        route=RouteConfig(candidates=["p/m"]),
        needs=Needs(modalities=frozenset({"text"})),
        output_limit=100,
        candidates=[_facts(300, uncertainty)],
    )
    (candidate,) = decision.candidates
    assert candidate.eligible is eligible
    if not eligible:
        assert candidate.excluded_because == (
            "prompt (~300 tokens estimated, up to 450 at ±50%) + max output (100) "
            "may exceed the context window (500)"
        )
    assert candidate.prompt_tokens_uncertainty == uncertainty


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


def _compat(base_url: str, window: int) -> dict[str, Any]:
    return {
        "providers": {"vllm": {"type": "openai_compatible", "base_url": base_url}},
        "models": {"vllm/dense": {"context_window": window, "max_output_tokens": 64}},
        "routes": {"default": {"candidates": ["vllm/dense"]}},
    }


async def test_reported_usage_calibrates_the_next_decision(server: FakeLLMServer) -> None:
    server.enqueue(Reply.text("ok", usage={"prompt_tokens": 1046, "completion_tokens": 1}))
    async with AsyncClient(_compat(server.openai_base_url, 1000), env={}) as client:
        before = client.route(messages=DENSE, max_tokens=8)
        assert before.prompt_tokens_method == "estimate" and before.plan == ("vllm/dense",)
        response = await client.chat.completions.create(
            model="default", messages=DENSE, max_tokens=8
        )
        route = response.route
        assert route is not None
        assert route.prompt_tokens_estimated == before.prompt_tokens  # estimated vs reported
        assert route.prompt_tokens_reported == 1046
        assert f"prompt tokens: estimated {before.prompt_tokens}, reported 1046" in (
            render_route_info(route)
        )
        after = client.route(messages=DENSE, max_tokens=8)
        (candidate,) = after.candidates
        assert after.prompt_tokens == 1046 and after.prompt_tokens_method == "estimate+calibrated"
        assert candidate.prompt_tokens_counted == before.prompt_tokens
        # 1,046 + max output no longer fits 1,000: refused before sending, not by the server.
        assert candidate.excluded_because is not None
        assert "may exceed the context window (1000)" in candidate.excluded_because
    assert len(server.requests) == 1


@pytest.mark.slow
async def test_calibration_against_llama_cpps_real_server(llama_server: LlamaServer) -> None:
    prompt: list[MessageParam] = [{"role": "user", "content": _symbols(300)}]
    async with AsyncClient(_compat(llama_server.base_url, 512), env={}) as client:
        estimate = client.route(messages=prompt, max_tokens=4).prompt_tokens
        response = await client.chat.completions.create(
            model="default", messages=prompt, max_tokens=4, temperature=0
        )
        assert response.usage is not None and response.route is not None
        reported = response.usage.prompt_tokens
        assert response.route.prompt_tokens_reported == reported
        assert response.route.prompt_tokens_estimated == estimate
        # Gemma makes ~1.5 characters of punctuation a token; the estimate assumed four.
        assert reported > 2 * estimate
        again = client.route(messages=prompt, max_tokens=4)
        assert again.prompt_tokens == reported  # the same prompt now counts as the server does
        # A longer prompt (~540 tokens for Gemma) no longer passes as fitting its 512 window.
        longer: list[MessageParam] = [{"role": "user", "content": _symbols(800)}]
        refused = client.route(messages=longer, max_tokens=4).candidates[0]
        assert refused.excluded_because is not None and "context window" in refused.excluded_because
    # Uncalibrated, the same prompt looked like it fitted: the server would have refused it.
    async with AsyncClient(_compat(llama_server.base_url, 512), env={}) as fresh:
        assert fresh.route(messages=longer, max_tokens=4).plan == ("vllm/dense",)
