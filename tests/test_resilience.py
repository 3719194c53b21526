"""Resilience over real sockets (issue 9): stream integrity, clocks, Retry-After, hosts, usage.

Two fake OpenAI-compatible servers on 127.0.0.1 play two providers (``one`` and ``two``), each
its own host:port. Timing margins are wide: this machine is slow and shared.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from genrouter import (
    AllCandidatesFailedError,
    AsyncClient,
    AttemptTimeoutError,
    ContentFilteredError,
    DeadlineExceededError,
    MessageParam,
    ProviderTimeoutError,
    StreamIdleTimeoutError,
    StreamInterruptedError,
)
from genrouter.testing import FakeLLMServer, Reply
from genrouter.types import RouteInfo

HELLO: list[MessageParam] = [{"role": "user", "content": "Say hello"}]
ONE_TRY = {"attempts": 1}


@pytest.fixture
async def servers() -> AsyncIterator[tuple[FakeLLMServer, FakeLLMServer]]:
    async with FakeLLMServer() as first, FakeLLMServer() as second:
        yield first, second


def two_providers(
    servers: tuple[FakeLLMServer, FakeLLMServer],
    *,
    provider: dict[str, Any] | None = None,
    **route: Any,
) -> dict[str, Any]:
    first, second = servers
    route.setdefault("candidates", ["one/m", "two/m"])
    route.setdefault("retry", ONE_TRY)
    extra = provider or {}
    return {
        "providers": {
            "one": {"type": "openai_compatible", "base_url": first.openai_base_url, **extra},
            "two": {"type": "openai_compatible", "base_url": second.openai_base_url},
        },
        "models": {
            "one/m": {"context_window": 8000, "input_price": 1.0, "output_price": 2.0},
            "two/m": {"context_window": 8000, "input_price": 1.0, "output_price": 2.0},
        },
        "routes": {"default": route},
    }


def outcomes(info: RouteInfo | None) -> list[tuple[str, str, str | None]]:
    assert info is not None
    return [(a.model, a.outcome, a.error_type) for a in info.attempts]


async def read_all(stream: Any) -> str:
    parts = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    return "".join(parts)


# -- 1. stream integrity ---------------------------------------------------------------------


async def test_bare_done_without_finish_reason_is_an_interruption(servers: Any) -> None:
    first, _ = servers
    first.enqueue(Reply.text("The capital is", omit_finish_reason=True))
    async with AsyncClient(two_providers(servers), env={}) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        with pytest.raises(StreamInterruptedError) as caught:
            await read_all(stream)
    assert caught.value.partial_text == "The capital is"
    assert outcomes(caught.value.route)[0][:2] == ("one/m", "interrupted")
    assert "finish_reason" in str(caught.value.__cause__)


async def test_bare_done_resumes_on_the_next_candidate(servers: Any) -> None:
    first, second = servers
    first.enqueue(Reply.text("The capital is", omit_finish_reason=True))
    second.enqueue(Reply.text(" Tokyo."))
    async with AsyncClient(two_providers(servers, resume=True), env={}) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        text = await read_all(stream)
    assert text == "The capital is Tokyo."
    assert [o[:2] for o in outcomes(stream.route)] == [
        ("one/m", "interrupted"),
        ("two/m", "ok"),
    ]


async def test_bare_done_before_any_content_fails_over_invisibly(servers: Any) -> None:
    first, second = servers
    first.enqueue(Reply(chunks=[], omit_finish_reason=True))
    second.enqueue(Reply.text("hi"))
    async with AsyncClient(two_providers(servers), env={}) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        assert await read_all(stream) == "hi"
    assert [o[:2] for o in outcomes(stream.route)] == [("one/m", "error"), ("two/m", "ok")]


async def test_lost_connection_after_finish_reason_is_success(servers: Any) -> None:
    first, second = servers
    first.enqueue(Reply.text("All done.", drop_after_finish=True))
    async with AsyncClient(two_providers(servers, resume=True), env={}) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        finishes = []
        parts = []
        async for chunk in stream:
            for choice in chunk.choices:
                parts.append(choice.delta.content or "")
                if choice.finish_reason:
                    finishes.append(choice.finish_reason)
    assert "".join(parts) == "All done."
    assert finishes == ["stop"]  # exactly once: no resume appended after the end
    assert [o[:2] for o in outcomes(stream.route)] == [("one/m", "ok")]
    assert second.requests == []


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"", {}),
        (b"<html><body>502 Bad Gateway</body></html>", {"Content-Type": "text/html"}),
        (b"<html><body>oops</body></html>\n\n", {}),
    ],
    ids=["empty", "html-content-type", "html-as-event-stream"],
)
async def test_a_200_without_an_event_stream_fails_over_at_once(
    servers: Any, body: bytes, headers: dict[str, str]
) -> None:
    first, second = servers
    config = two_providers(servers, retry={"attempts": 3, "backoff": {"initial_ms": 1}})
    config["circuit_breaker"] = {"failure_threshold": 2}
    async with AsyncClient(config, env={}) as client:
        for _ in range(2):
            first.enqueue(Reply(body_200=body, headers=headers))
            second.enqueue(Reply.text("fine"))
            stream = await client.chat.completions.create(
                model="default", messages=HELLO, stream=True
            )
            assert await read_all(stream) == "fine"
            assert outcomes(stream.route) == [
                ("one/m", "error", "ResponseFormatError"),
                ("two/m", "ok", None),
            ]
        # no retry on the same server; counted once per request: two requests, two failures
        assert len(first.requests) == 2
        assert client.health.circuit("one/m").state(time.monotonic()) == "open"


async def test_a_200_with_an_empty_body_non_streamed_fails_over(servers: Any) -> None:
    first, _ = servers
    html = {"Content-Type": "text/html"}
    first.enqueue(Reply(body_200=b"<html>proxy error</html>", headers=html))
    config = two_providers(servers, retry={"attempts": 3, "backoff": {"initial_ms": 1}})
    async with AsyncClient(config, env={}) as client:
        resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.route is not None and resp.route.model == "two/m"
    assert len(first.requests) == 1
    assert client.health.circuit("one/m").failures


async def test_a_provider_marked_as_omitting_finish_reason_ends_cleanly(servers: Any) -> None:
    first, _ = servers
    first.enqueue(Reply.text("fine as it is", omit_finish_reason=True))
    config = two_providers(servers, provider={"allow_missing_finish_reason": True})
    async with AsyncClient(config, env={}) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        assert await read_all(stream) == "fine as it is"
    assert [o[:2] for o in outcomes(stream.route)] == [("one/m", "ok")]


# -- 2. one owner of time ----------------------------------------------------------------------


async def test_provider_timeout_s_bounds_a_hung_non_streamed_attempt(servers: Any) -> None:
    first, second = servers
    first.enqueue(Reply.text("late", delay_headers_s=5.0))
    second.enqueue(Reply.text("on time"))
    config = two_providers(servers, provider={"timeout_s": 0.5})
    async with AsyncClient(config, env={}) as client:
        started = time.monotonic()
        resp = await client.chat.completions.create(model="default", messages=HELLO)
        elapsed = time.monotonic() - started
    assert resp.choices[0].message.content == "on time"
    assert outcomes(resp.route)[0] == ("one/m", "error", "AttemptTimeoutError")
    assert elapsed < 4.0


async def test_a_route_attempt_timeout_overrides_the_provider(servers: Any) -> None:
    first, _ = servers
    first.enqueue(Reply.text("late", delay_headers_s=5.0))
    config = two_providers(servers, attempt_timeout_s=0.5)
    async with AsyncClient(config, env={}) as client:
        resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.route is not None and resp.route.model == "two/m"
    errors = [a.error_type for a in resp.route.attempts]
    assert errors[0] == AttemptTimeoutError.__name__


async def test_the_deadline_bounds_a_trickling_stream(servers: Any) -> None:
    first, _ = servers
    pieces = [f"w{i} " for i in range(40)]
    first.enqueue(Reply(chunks=pieces, delay_between_chunks_s=0.2))
    async with AsyncClient(two_providers(servers), env={}) as client:
        started = time.monotonic()
        stream = await client.chat.completions.create(
            model="default", messages=HELLO, stream=True, timeout=1.5
        )
        with pytest.raises(StreamInterruptedError) as caught:
            await read_all(stream)
        elapsed = time.monotonic() - started
        assert isinstance(caught.value.__cause__, DeadlineExceededError)
        assert caught.value.partial_text and pieces[0] in caught.value.partial_text
        # the caller's deadline is not the model's failure
        assert not client.health.circuit("one/m").failures
    assert elapsed < 5.0  # 40 pieces * 0.2 s would be 8 s


async def test_a_stall_mid_stream_becomes_an_idle_timeout_and_resumes(servers: Any) -> None:
    first, second = servers
    first.enqueue(Reply(chunks=["one ", "two ", "three"], stall_after=2, stall_s=10.0))
    second.enqueue(Reply.text("three"))
    config = two_providers(servers, resume=True, stream_idle_timeout_s=0.5)
    async with AsyncClient(config, env={}) as client:
        started = time.monotonic()
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        text = await read_all(stream)
        elapsed = time.monotonic() - started
    assert text == "one two three"
    assert outcomes(stream.route)[0] == ("one/m", "interrupted", StreamIdleTimeoutError.__name__)
    assert elapsed < 6.0


async def test_a_callers_short_timeout_does_not_open_the_circuit(servers: Any) -> None:
    first, _ = servers
    config = two_providers(servers, candidates=["one/m"])
    config["circuit_breaker"] = {"failure_threshold": 2}
    async with AsyncClient(config, env={}) as client:
        for _ in range(3):
            first.enqueue(Reply.text("slow", delay_headers_s=2.0))
            with pytest.raises(AllCandidatesFailedError) as caught:
                await client.chat.completions.create(model="default", messages=HELLO, timeout=0.3)
            assert isinstance(caught.value.exceptions[0], DeadlineExceededError)
        assert client.health.circuit("one/m").state(time.monotonic()) == "closed"
        assert not client.health.circuit("one/m").failures


async def test_a_full_connection_pool_is_not_the_models_failure(servers: Any) -> None:
    first, _ = servers
    config = two_providers(servers, candidates=["one/m"], attempt_timeout_s=0.6)
    config["pool"] = {"max_connections": 1}
    config["circuit_breaker"] = {"failure_threshold": 1}
    first.enqueue(Reply(chunks=["a ", "b ", "c"], delay_between_chunks_s=1.0))
    async with AsyncClient(config, env={}) as client:
        holder = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        with pytest.raises(AllCandidatesFailedError) as caught:
            await client.chat.completions.create(model="default", messages=HELLO)
        error = caught.value.exceptions[0]
        assert isinstance(error, ProviderTimeoutError) and error.code == "pool_timeout"
        assert client.health.circuit("one/m").state(time.monotonic()) == "closed"
        await holder.aclose()


# -- 3. Retry-After as routing -------------------------------------------------------------------


async def test_a_long_retry_after_moves_on_and_cools_the_model_down(servers: Any) -> None:
    first, _ = servers
    limited = Reply.error(429, code="rate_limit_exceeded", headers={"Retry-After": "30"})
    first.enqueue(limited, limited)
    config = two_providers(servers, retry={"attempts": 3, "backoff": {"initial_ms": 1}})
    async with AsyncClient(config, env={}) as client:
        started = time.monotonic()
        resp = await client.chat.completions.create(model="default", messages=HELLO)
        assert time.monotonic() - started < 5.0  # no 30 s sleep
        assert resp.route is not None and resp.route.model == "two/m"
        assert any("cooling down until" in n for n in resp.route.notes)
        again = await client.chat.completions.create(model="default", messages=HELLO)
        assert again.route is not None and again.route.model == "two/m"
        assert again.route.decision is not None
        reasons = {c.model: c.excluded_because for c in again.route.decision.candidates}
        assert "cooling down until" in (reasons["one/m"] or "")
    assert len(first.requests) == 1  # the second request excluded it without a call


async def test_a_retry_after_in_milliseconds_beyond_the_time_left_moves_on(servers: Any) -> None:
    first, _ = servers
    first.enqueue(Reply.error(429, headers={"retry-after-ms": "4000"}))
    config = two_providers(servers, retry={"attempts": 3, "max_retry_after_s": 10})
    async with AsyncClient(config, env={}) as client:
        resp = await client.chat.completions.create(model="default", messages=HELLO, timeout=2.0)
    assert resp.route is not None and resp.route.model == "two/m"
    assert len(first.requests) == 1


async def test_a_short_retry_after_is_waited_out_on_the_same_model(servers: Any) -> None:
    first, second = servers
    first.enqueue(Reply.error(429, headers={"Retry-After": "0.2"}), Reply.text("after a nap"))
    config = two_providers(servers, retry={"attempts": 3})
    async with AsyncClient(config, env={}) as client:
        resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.choices[0].message.content == "after a nap"
    assert second.requests == []
    assert resp.route is not None
    assert resp.route.attempts[0].retry_delay_ms == pytest.approx(200, abs=1)


# -- 4. reachability per host ----------------------------------------------------------------------


async def test_a_refusing_host_leaves_the_other_provider_every_request(servers: Any) -> None:
    _, second = servers
    dead = FakeLLMServer()
    dead.start()
    dead_url = dead.openai_base_url
    dead.stop()  # nothing listens there now: connections are refused
    config = two_providers(servers)
    config["providers"]["one"]["base_url"] = dead_url
    config["models"]["home/l"] = {"local": True}
    config["providers"]["home"] = {"type": "custom"}
    config["routes"]["default"]["fallbacks"] = ["home/l"]
    from tests.support import ScriptedProvider

    home = ScriptedProvider("home", remote=False)
    async with AsyncClient(config, env={}, providers={"home": home}) as client:
        for _ in range(4):
            resp = await client.chat.completions.create(model="default", messages=HELLO)
            assert resp.route is not None and resp.route.model == "two/m"
    assert len(second.requests) == 4
    assert home.calls == []


# -- 5. usage always reported -------------------------------------------------------------------


async def test_usage_is_counted_when_the_server_sends_none(servers: Any) -> None:
    first, _ = servers
    first.enqueue(Reply.text("Hello there friend", no_usage=True))
    first.enqueue(Reply.text("Hello there friend", no_usage=True))
    async with AsyncClient(two_providers(servers), env={}) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        await read_all(stream)
        final = stream.get_final_completion()
        resp = await client.chat.completions.create(model="default", messages=HELLO)
    for usage, info in ((final.usage, stream.route), (resp.usage, resp.route)):
        assert usage is not None and usage.completion_tokens >= 3 and usage.prompt_tokens > 0
        assert info is not None and info.usage_estimated
        assert info.cost_usd is not None and info.cost_usd > 0


async def test_running_usage_totals_are_not_summed(servers: Any) -> None:
    first, _ = servers
    usage = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
    first.enqueue(Reply(chunks=["a ", "b ", "c"], usage=usage, usage_every_chunk=True))
    async with AsyncClient(two_providers(servers), env={}) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        await read_all(stream)
    final = stream.get_final_completion()
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (10, 3)
    assert stream.route is not None and not stream.route.usage_estimated
    assert stream.route.cost_usd == pytest.approx((10 * 1.0 + 3 * 2.0) / 1e6)


async def test_an_interrupted_stream_is_charged_for_what_it_delivered(servers: Any) -> None:
    first, _ = servers
    first.enqueue(Reply(chunks=["one ", "two ", "three"], cut_after=2))
    config = two_providers(servers, candidates=["one/m"])
    config["budget"] = {"limit_usd": 1.0}
    async with AsyncClient(config, env={}) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        with pytest.raises(StreamInterruptedError) as caught:
            await read_all(stream)
        assert caught.value.route is not None and caught.value.route.cost_usd
        budget = client._runtime.budget
        assert budget is not None and budget.spent_usd(time.monotonic()) > 0


async def test_concurrent_cancelled_requests_release_everything(servers: Any) -> None:
    first, _ = servers
    config = two_providers(servers, candidates=["one/m"])
    config["budget"] = {"limit_usd": 1.0}
    async with AsyncClient(config, env={}) as client:
        for _ in range(3):
            first.enqueue(Reply.text("slow", delay_headers_s=5.0))
        tasks = [
            asyncio.create_task(client.chat.completions.create(model="default", messages=HELLO))
            for _ in range(3)
        ]
        await asyncio.sleep(0.5)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        budget = client._runtime.budget
        assert budget is not None and budget.reserved == pytest.approx(0.0)
        assert client.health.circuit("one/m").state(time.monotonic()) == "closed"


async def test_an_unpriced_model_is_not_free_under_a_budget(servers: Any) -> None:
    config = two_providers(servers)
    config["models"]["one/m"] = {"context_window": 8000}  # no price
    config["budget"] = {"limit_usd": 1.0}
    async with AsyncClient(config, env={}) as client:
        resp = await client.chat.completions.create(model="default", messages=HELLO)
        assert resp.route is not None and resp.route.model == "two/m"
        assert resp.route.decision is not None
        reason = resp.route.decision.candidates[0].excluded_because or ""
        assert "no price known" in reason


# -- 7. one lease per attempt; spans end on every exit ---------------------------------------------


async def test_spans_end_with_an_error_status_on_failure_and_cancellation(servers: Any) -> None:
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    export = pytest.importorskip("opentelemetry.sdk.trace.export")
    memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    from opentelemetry.trace import StatusCode

    exporter = memory.InMemorySpanExporter()
    tracer = sdk_trace.TracerProvider()
    tracer.add_span_processor(export.SimpleSpanProcessor(exporter))
    first, second = servers
    config = two_providers(servers)
    async with AsyncClient(config, env={}, tracing=tracer) as client:
        first.enqueue(Reply.error(500))
        second.enqueue(Reply.error(500))
        with pytest.raises(AllCandidatesFailedError):
            await client.chat.completions.create(model="default", messages=HELLO)
        first.enqueue(Reply.text("slow", delay_headers_s=5.0))
        task = asyncio.create_task(client.chat.completions.create(model="default", messages=HELLO))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    failed, cancelled = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert failed.status.status_code is StatusCode.ERROR
    assert dict(failed.attributes or {})["error.type"] == "AllCandidatesFailedError"
    assert cancelled.status.status_code is StatusCode.ERROR
    assert dict(cancelled.attributes or {})["error.type"] == "CancelledError"


# -- 6. resume per dialect --------------------------------------------------------------------


def resume_config(
    servers: Any, second: dict[str, Any], *, third: bool = False, **route: Any
) -> dict[str, Any]:
    config = two_providers(servers, resume=True, **route)
    config["providers"]["two"] = second
    if third:
        config["providers"]["three"] = {
            "type": "openai_compatible",
            "base_url": servers[1].openai_base_url,
        }
        config["models"]["three/n"] = {"context_window": 8000}
        config["routes"]["default"]["candidates"] = ["one/m", "two/m", "three/n"]
    return config


async def test_resume_without_prefill_asks_to_continue_and_trims_the_repeat(
    servers: Any,
) -> None:
    first, second = servers
    first.enqueue(Reply.text("The capital of Japan is", omit_finish_reason=True))
    second.enqueue(Reply.text("The capital of Japan is Tokyo."))  # the model started over
    compat = {"type": "openai_compatible", "base_url": second.openai_base_url}
    async with AsyncClient(resume_config(servers, compat), env={}) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        text = await read_all(stream)
    assert text == "The capital of Japan is Tokyo."  # never repeated, the seam's space kept
    assert stream.route is not None and stream.route.resumed
    assert stream.route.resumed_by == "instruction"
    sent = second.requests[0].body["messages"]
    assert sent[-2] == {"role": "assistant", "content": "The capital of Japan is"}
    assert sent[-1]["role"] == "user" and "Continue" in sent[-1]["content"]


async def test_resume_trims_a_repeated_tail_at_the_seam(servers: Any) -> None:
    first, second = servers
    first.enqueue(Reply.text("The capital of Japan is", omit_finish_reason=True))
    second.enqueue(Reply(chunks=["of Japan ", "is", " Tokyo."]))
    compat = {"type": "openai_compatible", "base_url": second.openai_base_url}
    async with AsyncClient(resume_config(servers, compat), env={}) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        assert await read_all(stream) == "The capital of Japan is Tokyo."


@pytest.mark.parametrize(
    ("second", "field"),
    [
        ({"type": "dashscope", "region": "intl"}, "partial"),
        ({"type": "openai_compatible", "continuation": "prefix"}, "prefix"),
    ],
    ids=["dashscope-partial", "deepseek-prefix"],
)
async def test_resume_uses_the_dialects_prefill(
    servers: Any, second: dict[str, Any], field: str
) -> None:
    first, server = servers
    base = server.dashscope_base_url if second["type"] == "dashscope" else server.openai_base_url
    first.enqueue(Reply.text("The capital of Japan is", omit_finish_reason=True))
    server.enqueue(Reply.text(" Tokyo."))
    config = resume_config(servers, {**second, "base_url": base})
    async with AsyncClient(config, env={"DASHSCOPE_API_KEY": "sk-fake-0123456789"}) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        assert await read_all(stream) == "The capital of Japan is Tokyo."
    last = server.requests[0].body["messages"][-1]
    assert last == {"role": "assistant", "content": "The capital of Japan is", field: True}
    assert stream.route is not None and stream.route.resumed_by == field


async def test_a_candidate_rejecting_the_continuation_falls_over(servers: Any) -> None:
    first, second = servers
    first.enqueue(Reply.text("The capital of Japan is", omit_finish_reason=True))
    second.enqueue(Reply.error(400, message="prefill not supported"), model="m")
    second.enqueue(Reply.text(" Tokyo."), model="n")
    compat = {"type": "openai_compatible", "base_url": second.openai_base_url}
    async with AsyncClient(resume_config(servers, compat, third=True), env={}) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        assert await read_all(stream) == "The capital of Japan is Tokyo."
    assert stream.route is not None
    assert [(a.model, a.outcome) for a in stream.route.attempts] == [
        ("one/m", "interrupted"),
        ("two/m", "error"),
        ("three/n", "ok"),
    ]
    assert stream.route.notes[-1] == "resumed on three/n by instruction continuation"


@pytest.mark.parametrize("policy", ["next", "raise"])
async def test_a_route_chooses_what_a_content_filter_refusal_does(
    servers: Any, policy: str
) -> None:
    first, second = servers
    first.enqueue(Reply.error(400, code="content_filter", message="refused"))
    second.enqueue(Reply.text("allowed"))
    config = two_providers(servers, on_content_filter=policy)
    async with AsyncClient(config, env={}) as client:
        if policy == "next":
            resp = await client.chat.completions.create(model="default", messages=HELLO)
            assert resp.route is not None and resp.route.model == "two/m"
        else:
            with pytest.raises(ContentFilteredError):
                await client.chat.completions.create(model="default", messages=HELLO)
            assert second.requests == []
