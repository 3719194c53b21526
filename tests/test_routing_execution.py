"""The router carrying out plans: retries, fallbacks, streams, circuits, offline, budgets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from genrouter import (
    AllCandidatesFailedError,
    AsyncClient,
    AsyncHooks,
    AuthenticationError,
    BudgetExceededError,
    Client,
    ContextWindowExceededError,
    InvalidRequestError,
    NoCandidateError,
    ProviderConnectionError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    UnsupportedInputError,
)
from genrouter.params import MessageParam
from genrouter.types import Attempt, RouteInfo, Usage
from tests.support import ManualClock, ScriptedProvider, Step

HELLO: list[MessageParam] = [{"role": "user", "content": "Say hello"}]
FAST_RETRY = {"attempts": 3, "backoff": {"initial_ms": 1, "max_ms": 2}}


def make_config(**route: Any) -> dict[str, Any]:
    route.setdefault("candidates", ["alpha/a1", "beta/b1"])
    route.setdefault("retry", FAST_RETRY)
    return {
        "providers": {n: {"type": "custom"} for n in ("alpha", "beta", "home")},
        "models": {
            "alpha/a1": {"input_price": 5.0, "output_price": 15.0, "context_window": 4000},
            "beta/b1": {"input_price": 0.5, "output_price": 1.5, "context_window": 64000},
            "beta/vision": {
                "input_price": 1.0,
                "output_price": 3.0,
                "input_modalities": ["text", "image"],
            },
            "home/l1": {"local": True, "context_window": 8000},
        },
        "routes": {"default": route},
    }


def make_client(
    config: dict[str, Any] | None = None, **kwargs: Any
) -> tuple[AsyncClient, dict[str, ScriptedProvider]]:
    providers = {
        "alpha": ScriptedProvider("alpha"),
        "beta": ScriptedProvider("beta"),
        "home": ScriptedProvider("home", remote=False),
    }
    client = AsyncClient(config or make_config(), providers=providers, env={}, seed=1, **kwargs)
    return client, providers


def outcomes(info: RouteInfo | None) -> list[tuple[str, str]]:
    assert info is not None
    return [(a.model, a.outcome) for a in info.attempts]


async def test_first_candidate_answers_with_route_info() -> None:
    client, providers = make_client()
    resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.choices[0].message.content == "ok"
    assert resp.route is not None
    assert resp.route.model == "alpha/a1"
    assert outcomes(resp.route) == [("alpha/a1", "ok")]
    assert resp.route.cost_usd == pytest.approx((10 * 5.0 + 1 * 15.0) / 1e6)
    assert "route" not in resp.model_dump()
    assert len(providers["beta"].calls) == 0


async def test_cost_objective_puts_the_cheaper_model_first() -> None:
    client, providers = make_client(make_config(objective="cost"))
    resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.route is not None and resp.route.model == "beta/b1"
    decision = resp.route.decision
    assert decision is not None and decision.plan == ("beta/b1", "alpha/a1")
    costs = {c.model: c.estimated_cost_usd for c in decision.candidates}
    assert costs["beta/b1"] is not None and costs["alpha/a1"] is not None
    assert costs["beta/b1"] < costs["alpha/a1"]
    assert providers["alpha"].calls == []


async def test_rate_limit_retry_after_is_honoured_then_succeeds() -> None:
    client, providers = make_client()
    providers["alpha"].script("a1", Step(error=RateLimitError("slow down", retry_after=0.05)))
    resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.route is not None
    assert outcomes(resp.route) == [("alpha/a1", "error"), ("alpha/a1", "ok")]
    assert resp.route.attempts[0].retry_delay_ms == pytest.approx(50.0)
    assert resp.route.attempts[0].error_type == "RateLimitError"


async def test_server_errors_exhaust_attempts_then_fall_back() -> None:
    client, providers = make_client()
    providers["alpha"].script("a1", *[Step(error=ServerError("boom", status_code=503))] * 3)
    resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.route is not None
    assert outcomes(resp.route) == [("alpha/a1", "error")] * 3 + [("beta/b1", "ok")]
    assert resp.route.fallbacks == 1


async def test_authentication_error_moves_on_at_once() -> None:
    client, providers = make_client()
    providers["alpha"].script("a1", Step(error=AuthenticationError("bad key", status_code=401)))
    resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.route is not None
    assert outcomes(resp.route) == [("alpha/a1", "error"), ("beta/b1", "ok")]


async def test_status_not_listed_in_retry_on_moves_on() -> None:
    client, providers = make_client(make_config(retry={"attempts": 3, "on": [429]}))
    providers["alpha"].script("a1", Step(error=ServerError("boom", status_code=500)))
    resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.route is not None
    assert outcomes(resp.route) == [("alpha/a1", "error"), ("beta/b1", "ok")]


async def test_all_candidates_failing_raises_one_group_with_every_attempt() -> None:
    client, providers = make_client(make_config(retry={"attempts": 1}))
    providers["alpha"].script("a1", Step(error=ServerError("a down", status_code=500)))
    providers["beta"].script("b1", Step(error=AuthenticationError("b key", status_code=401)))
    with pytest.raises(AllCandidatesFailedError) as caught:
        await client.chat.completions.create(model="default", messages=HELLO)
    err = caught.value
    assert [type(e) for e in err.exceptions] == [ServerError, AuthenticationError]
    assert err.route is not None and len(err.route.attempts) == 2
    try:
        raise err
    except* AuthenticationError as group:
        assert len(group.exceptions) == 1
    except* ServerError:
        pass


async def test_malformed_request_raises_before_any_call() -> None:
    client, providers = make_client()
    with pytest.raises(InvalidRequestError, match=r"messages\[0\]"):
        await client.chat.completions.create(
            model="default",
            messages=[{"role": "user"}],  # type: ignore[list-item]  # what it tests
        )
    with pytest.raises(InvalidRequestError, match="temperature"):
        await client.chat.completions.create(model="default", messages=HELLO, temperature=7)
    assert providers["alpha"].calls == []


async def test_image_request_never_goes_to_a_text_only_model() -> None:
    client, providers = make_client(make_config(candidates=["alpha/a1", "beta/vision"]))
    image: list[MessageParam] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}},
            ],
        }
    ]
    resp = await client.chat.completions.create(model="default", messages=image)
    assert resp.route is not None and resp.route.model == "beta/vision"
    assert providers["alpha"].calls == []
    decision = resp.route.decision
    assert decision is not None
    excluded = {c.model: c.excluded_because for c in decision.candidates}
    assert "image" in (excluded["alpha/a1"] or "")
    with pytest.raises(UnsupportedInputError, match="alpha/a1"):
        await client.chat.completions.create(model="alpha/a1", messages=image)


async def test_context_window_filtering_and_error_skip_smaller_windows() -> None:
    client, providers = make_client(
        make_config(candidates=["alpha/a1", "home/l1", "beta/b1"], retry={"attempts": 1})
    )
    long_prompt: list[MessageParam] = [{"role": "user", "content": "word " * 6000}]
    decision = client.route(model="default", messages=long_prompt)
    assert "alpha/a1" not in decision.plan
    # A provider's own context-window error skips candidates whose window is no larger.
    providers["alpha"].script(
        "a1", Step(error=ContextWindowExceededError("too long", status_code=400))
    )
    resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.route is not None
    assert resp.route.model == "home/l1"  # 8000 > 4000: still worth a try
    assert outcomes(resp.route)[0] == ("alpha/a1", "error")


async def test_first_token_timeout_fails_over_without_duplicating_text() -> None:
    client, providers = make_client(make_config(first_token_timeout_s=0.05))
    providers["alpha"].script("a1", Step(text="slow answer", delay_s=1.0))
    providers["beta"].script("b1", Step(pieces=["Hel", "lo", "!"]))
    async with await client.chat.completions.create(
        model="default", messages=HELLO, stream=True
    ) as stream:
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hello!"
    final = stream.get_final_completion()
    assert final.choices[0].message.content == "Hello!"
    assert final.route is not None
    assert outcomes(final.route)[0] == ("alpha/a1", "error")
    assert final.route.attempts[0].error_type == "FirstTokenTimeoutError"
    assert final.route.model == "beta/b1"
    assert providers["alpha"].open_streams == 0


async def test_stream_cut_after_tokens_raises_with_the_partial_text() -> None:
    client, providers = make_client()
    cut = ProviderConnectionError("peer closed", code="connection_lost")
    providers["alpha"].script("a1", Step(pieces=["The ", "answer ", "is"], error=cut, fail_after=2))
    received = []
    stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
    with pytest.raises(StreamInterruptedError) as caught:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert caught.value.partial_text == "The answer " == "".join(received)
    assert caught.value.__cause__ is cut
    assert caught.value.route is not None
    assert outcomes(caught.value.route) == [("alpha/a1", "interrupted")]
    assert providers["beta"].calls == []  # no silent second answer


async def test_resume_continues_on_the_next_candidate_as_one_answer() -> None:
    client, providers = make_client()
    cut = ServerError("upstream reset", status_code=502)
    providers["alpha"].script("a1", Step(pieces=["Once upon ", "a time"], error=cut, fail_after=1))
    providers["beta"].script("b1", Step(pieces=["a time, ", "the end."]))
    stream = await client.chat.completions.create(
        model="default", messages=HELLO, stream=True, resume=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Once upon a time, the end."
    final = stream.get_final_completion()
    assert final.choices[0].message.content == text
    assert final.route is not None and final.route.resumed
    assert outcomes(final.route) == [("alpha/a1", "interrupted"), ("beta/b1", "ok")]
    sent = providers["beta"].calls[0].request.messages[-1]
    assert sent.role == "assistant" and sent.content == "Once upon "
    assert getattr(sent, "partial", None) is True


async def test_closing_a_stream_early_closes_the_provider_stream() -> None:
    client, providers = make_client()
    providers["alpha"].script("a1", Step(pieces=["a", "b", "c", "d"]))
    async with await client.chat.completions.create(
        model="default", messages=HELLO, stream=True
    ) as stream:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content == "b":
                break
    assert providers["alpha"].open_streams == 0


async def test_circuit_opens_after_failures_and_recovers_after_cooldown() -> None:
    clock = ManualClock()
    config = make_config(retry={"attempts": 1})
    config["circuit_breaker"] = {"failure_threshold": 2, "window_s": 60, "cooldown_s": 30}
    client, providers = make_client(config, clock=clock)
    providers["alpha"].script("a1", *[Step(error=ServerError("down", status_code=500))] * 2)
    for _ in range(2):
        await client.chat.completions.create(model="default", messages=HELLO)
    assert len(providers["alpha"].calls) == 2
    decision = client.route(model="default", messages=HELLO)
    a1 = next(c for c in decision.candidates if c.model == "alpha/a1")
    assert a1.excluded_because is not None and "circuit open" in a1.excluded_because
    resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.route is not None and resp.route.model == "beta/b1"
    assert len(providers["alpha"].calls) == 2  # skipped while open
    clock.advance(31)  # half-open: one probe goes through and succeeds
    resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.route is not None and resp.route.model == "alpha/a1"
    assert client.health.circuit("alpha/a1").state(clock()) == "closed"


async def test_offline_skips_remote_candidates_without_waiting() -> None:
    clock = ManualClock()
    config = make_config(candidates=["alpha/a1", "beta/b1"], fallbacks=["home/l1"])
    config["offline"] = {"down_for_s": 20}
    client, providers = make_client(config, clock=clock)
    # What a machine without a network sees: name resolution fails for every host.
    dns = ProviderConnectionError(
        "could not connect: [Errno -3] Temporary failure in name resolution",
        code="connect_failed",
    )
    providers["alpha"].script("a1", Step(error=dns))
    providers["beta"].script("b1", Step(error=dns))
    resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.route is not None and resp.route.model == "home/l1"
    # each remote was tried once, without backoff: two hosts failing DNS mark the network down
    assert len(providers["alpha"].calls) == len(providers["beta"].calls) == 1
    assert any("offline" in n for n in resp.route.notes)
    resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.route is not None and resp.route.model == "home/l1"
    assert len(providers["alpha"].calls) == 1  # not even tried
    decision = resp.route.decision
    assert decision is not None
    assert all(
        "network marked down" in (c.excluded_because or "")
        for c in decision.candidates
        if not c.fallback
    )
    clock.advance(21)  # the next request probes the network again
    resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.route is not None and resp.route.model == "alpha/a1"


async def test_one_refused_host_does_not_turn_off_the_other_remotes() -> None:
    clock = ManualClock()
    config = make_config(candidates=["alpha/a1", "beta/b1"], fallbacks=["home/l1"])
    client, providers = make_client(config, clock=clock)
    refused = ProviderConnectionError("connection refused", code="connect_failed")
    providers["alpha"].script("a1", *[Step(error=refused)] * 4)
    for _ in range(4):
        resp = await client.chat.completions.create(model="default", messages=HELLO)
        assert resp.route is not None and resp.route.model == "beta/b1"
    # alpha's host is marked after its first refusal (later requests skip it without a call);
    # a refusal proves the network works, so beta got every request
    assert len(providers["alpha"].calls) == 1
    assert len(providers["beta"].calls) == 4
    assert client.health.reachability.network_down_at is None
    assert resp.route is not None
    assert "alpha.example.invalid unreachable" in str(resp.route.decision)


async def test_missing_credentials_route_on_without_error() -> None:
    client, providers = make_client()
    providers["alpha"].credentials = False
    resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.route is not None and resp.route.model == "beta/b1"
    assert providers["alpha"].calls == []


async def test_budget_prefers_cheaper_candidates_then_raises() -> None:
    config = make_config(objective="ordered")
    config["budget"] = {"limit_usd": 0.0001, "window_s": 3600}
    client, providers = make_client(config)
    usage = Usage(prompt_tokens=5, completion_tokens=1, total_tokens=6)
    providers["alpha"].script("a1", Step(usage=usage))
    first = await client.chat.completions.create(model="default", messages=HELLO, max_tokens=1)
    assert first.route is not None and first.route.model == "alpha/a1"
    # $0.00004 spent: alpha (est. ~$0.0003 with 16 tokens out) no longer fits; beta does
    resp = await client.chat.completions.create(model="default", messages=HELLO, max_tokens=16)
    assert resp.route is not None and resp.route.model == "beta/b1"
    with pytest.raises(BudgetExceededError) as caught:
        await client.chat.completions.create(model="default", messages=HELLO, max_tokens=3000)
    assert caught.value.limit_usd == 0.0001


async def test_hooks_see_attempts_fallbacks_and_completion() -> None:
    seen: list[str] = []

    async def on_end(attempt: Attempt) -> None:
        seen.append(f"end {attempt.model} {attempt.outcome}")

    hooks = AsyncHooks(
        on_attempt_start=lambda model, n: seen.append(f"start {model} {n}"),
        on_attempt_end=on_end,
        on_fallback=lambda a, b, e: seen.append(f"fallback {a}->{b} {type(e).__name__}"),
        on_complete=lambda info: seen.append(f"complete {info.model}"),
    )
    client, providers = make_client(hooks=hooks)
    providers["alpha"].script("a1", Step(error=AuthenticationError("no", status_code=401)))
    await client.chat.completions.create(model="default", messages=HELLO)
    assert seen == [
        "start alpha/a1 1",
        "end alpha/a1 error",
        "fallback alpha/a1->beta/b1 AuthenticationError",
        "start beta/b1 1",
        "end beta/b1 ok",
        "complete beta/b1",
    ]


async def test_a_raising_hook_does_not_break_the_request(caplog: pytest.LogCaptureFixture) -> None:
    def broken(info: RouteInfo) -> None:
        raise RuntimeError("hook bug")

    client, _ = make_client(hooks=AsyncHooks(on_complete=broken))
    resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.choices[0].message.content == "ok"
    assert "hook bug" in caplog.text


async def test_dry_run_calls_nothing_and_no_candidate_error_explains() -> None:
    client, providers = make_client()
    providers["alpha"].credentials = False
    providers["beta"].credentials = False
    decision = client.route(model="default", messages=HELLO)
    assert decision.plan == ()
    assert "no credentials" in decision.explain()
    with pytest.raises(NoCandidateError, match="no credentials"):
        await client.chat.completions.create(model="default", messages=HELLO)
    assert providers["alpha"].calls == [] and providers["beta"].calls == []


async def test_cancelling_a_request_releases_the_circuit_probe() -> None:
    client, providers = make_client()
    providers["alpha"].script("a1", Step(delay_s=5))
    task = asyncio.ensure_future(client.chat.completions.create(model="default", messages=HELLO))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client.health.circuit("alpha/a1").state(0) == "closed"


def test_sync_client_complete_and_stream() -> None:
    providers = {
        "alpha": ScriptedProvider("alpha"),
        "beta": ScriptedProvider("beta"),
        "home": ScriptedProvider("home", remote=False),
    }
    providers["alpha"].script("a1", Step(text="sync"), Step(pieces=["s", "y", "n", "c"]))
    with Client(make_config(), providers=providers, env={}) as client:
        resp = client.chat.completions.create(model="default", messages=HELLO)
        assert resp.choices[0].message.content == "sync"
        with client.chat.completions.create(model="default", messages=HELLO, stream=True) as s:
            text = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
        assert text == "sync"
        assert s.get_final_completion().usage is not None


async def test_resume_with_no_candidate_left_still_reports_the_partial_text() -> None:
    client, providers = make_client(make_config(retry={"attempts": 1}))
    cut = ServerError("reset", status_code=502)
    providers["alpha"].script("a1", Step(pieces=["half ", "answer"], error=cut, fail_after=1))
    providers["beta"].script("b1", Step(error=AuthenticationError("no", status_code=401)))
    stream = await client.chat.completions.create(
        model="default", messages=HELLO, stream=True, resume=True
    )
    with pytest.raises(StreamInterruptedError) as caught:
        async for _ in stream:
            pass
    assert caught.value.partial_text == "half "
    assert isinstance(caught.value.__cause__, AllCandidatesFailedError)


async def test_stopping_a_stream_early_is_recorded_as_cancelled() -> None:
    client, providers = make_client()
    providers["alpha"].script("a1", Step(pieces=["a", "b", "c"]))
    stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    await stream.aclose()
    assert outcomes(stream.route) == [("alpha/a1", "cancelled")]
    assert client.health.circuit("alpha/a1").state(0) == "closed"


async def test_without_a_local_model_offline_marks_do_not_block_remote_tries() -> None:
    clock = ManualClock()
    client, providers = make_client(make_config(retry={"attempts": 1}), clock=clock)
    refused = ProviderConnectionError("connection refused", code="connect_failed")
    providers["alpha"].script("a1", Step(error=refused))
    # No local candidate: after alpha's connect failure, beta still gets its try.
    resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.route is not None and resp.route.model == "beta/b1"
    providers["beta"].script("b1", Step(error=refused))
    with pytest.raises(AllCandidatesFailedError):
        await client.chat.completions.create(model="default", messages=HELLO)
    # Every remote is marked down and nothing local exists: the next request probes anyway
    # rather than failing with no attempt.
    resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.route is not None and resp.route.model == "alpha/a1"


async def test_a_marked_remote_behind_the_local_model_keeps_its_place() -> None:
    clock = ManualClock()
    config = make_config(candidates=["alpha/a1", "home/l1", "beta/b1"])
    config["offline"] = {"down_for_s": 60}
    client, _ = make_client(config, clock=clock)
    client.health.reachability.mark_unreachable("alpha", clock(), whole_network=True)
    decision = client.route(model="default", messages=HELLO)
    assert decision.plan == ("home/l1", "beta/b1")  # beta is the last hope if home fails


async def test_free_local_models_stay_eligible_when_the_budget_is_overspent() -> None:
    config = make_config(candidates=["alpha/a1"], fallbacks=["home/l1"])
    config["budget"] = {"limit_usd": 0.0001}
    client, providers = make_client(config)
    # The actual usage costs more than the estimate: the budget goes negative.
    big = Usage(prompt_tokens=100, completion_tokens=100, total_tokens=200)
    providers["alpha"].script("a1", Step(usage=big))
    await client.chat.completions.create(model="default", messages=HELLO, max_tokens=1)
    resp = await client.chat.completions.create(model="default", messages=HELLO, max_tokens=1)
    assert resp.route is not None and resp.route.model == "home/l1"


async def test_concurrent_requests_cannot_spend_the_same_budget_twice() -> None:
    async def slow_start(model: str, attempt: int) -> None:
        await asyncio.sleep(0.01)

    config = make_config(candidates=["alpha/a1"])
    config["budget"] = {"limit_usd": 0.0001}
    client, providers = make_client(config, hooks=AsyncHooks(on_attempt_start=slow_start))
    # Each call is estimated at ~$0.00006 (10 prompt + 1 output token at $5/$15 per 1M... x4)
    calls = [
        client.chat.completions.create(model="default", messages=HELLO, max_tokens=1)
        for _ in range(3)
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    answered = [r for r in results if not isinstance(r, BaseException)]
    assert len(providers["alpha"].calls) == len(answered) == 1
    assert client._runtime.budget is not None and client._runtime.budget.reserved == 0


async def test_resume_refuses_when_reasoning_was_already_delivered() -> None:
    client, providers = make_client()
    cut = ServerError("reset", status_code=502)

    async def thinking_stream(call: Any) -> Any:
        from genrouter.types import ChatCompletionChunk, ChoiceDelta, ChunkChoice

        yield ChatCompletionChunk(
            id="x",
            created=0,
            model="a1",
            choices=[ChunkChoice(delta=ChoiceDelta(reasoning_content="thinking..."))],
        )
        yield ChatCompletionChunk(
            id="x", created=0, model="a1", choices=[ChunkChoice(delta=ChoiceDelta(content="A"))]
        )
        raise cut

    providers["alpha"].stream = thinking_stream  # type: ignore[method-assign]
    stream = await client.chat.completions.create(
        model="default", messages=HELLO, stream=True, resume=True
    )
    with pytest.raises(StreamInterruptedError) as caught:
        async for _ in stream:
            pass
    assert caught.value.partial_reasoning == "thinking..." and caught.value.partial_text == "A"
    assert providers["beta"].calls == []  # not resumed: the reasoning would be sent twice


async def test_a_provider_bug_surfaces_and_leaves_health_and_budget_clean() -> None:
    clock = ManualClock()
    config = make_config(candidates=["alpha/a1"])
    config["budget"] = {"limit_usd": 1.0}
    config["circuit_breaker"] = {"failure_threshold": 1, "cooldown_s": 10}
    client, providers = make_client(config, clock=clock)
    providers["alpha"].script(
        "a1", Step(error=ServerError("down", status_code=500)), Step(error=ValueError("bug"))
    )
    with pytest.raises(AllCandidatesFailedError):
        await client.chat.completions.create(model="default", messages=HELLO)
    clock.advance(11)  # half-open: the next call is the probe, and it hits the bug
    with pytest.raises(ValueError, match="bug"):
        await client.chat.completions.create(model="default", messages=HELLO)
    assert client._runtime.budget is not None and client._runtime.budget.reserved == 0
    resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.route is not None and resp.route.model == "alpha/a1"  # probe slot was freed


async def test_a_skipped_candidate_does_not_inherit_the_previous_error() -> None:
    config = make_config(candidates=["alpha/a1", "beta/b1", "home/l1"], retry={"attempts": 1})
    config["circuit_breaker"] = {"failure_threshold": 1, "cooldown_s": 60}
    clock = ManualClock()
    client = None

    def open_beta(attempt: Attempt) -> None:
        # While alpha fails, beta's circuit opens (as if another request saw it fail).
        assert client is not None
        client.health.circuit("beta/b1").record_failure(clock())

    client, providers = make_client(config, hooks=AsyncHooks(on_attempt_end=open_beta), clock=clock)
    providers["alpha"].script(
        "a1", Step(error=ContextWindowExceededError("too long", status_code=400))
    )
    resp = await client.chat.completions.create(model="default", messages=HELLO)
    # beta was skipped untried; home (8000) is larger than alpha (4000) and gets its try,
    # rather than being measured against beta's window as if beta had raised the error.
    assert resp.route is not None and resp.route.model == "home/l1"
    assert [a.model for a in resp.route.attempts] == ["alpha/a1", "home/l1"]


def test_closing_a_sync_client_ends_calls_in_flight_and_open_streams() -> None:
    import threading

    from genrouter import GenRouterError

    providers = {
        "alpha": ScriptedProvider("alpha"),
        "beta": ScriptedProvider("beta"),
        "home": ScriptedProvider("home", remote=False),
    }
    providers["alpha"].script(
        "a1", Step(pieces=["a", "b", "c"]), Step(delay_s=30), Step(delay_s=30)
    )
    client = Client(make_config(candidates=["alpha/a1"]), providers=providers, env={})
    stream = client.chat.completions.create(model="default", messages=HELLO, stream=True)
    next(stream)  # an open stream the caller never closes
    errors: list[BaseException] = []

    def slow_call() -> None:
        try:
            client.chat.completions.create(model="default", messages=HELLO)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=slow_call)
    worker.start()
    while len(providers["alpha"].calls) < 2:
        threading.Event().wait(0.01)
    client.close()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], GenRouterError)
    assert providers["alpha"].open_streams == 0  # the abandoned stream was closed
    stream.close()  # a no-op now, not an error
    client.close()  # idempotent
