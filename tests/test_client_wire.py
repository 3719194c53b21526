"""The whole client over real sockets: the fake server speaks OpenAI's and DashScope's wire."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from genrouter import (
    AllCandidatesFailedError,
    AsyncClient,
    Client,
    StreamInterruptedError,
)
from genrouter.params import MessageParam
from genrouter.testing import FakeLLMServer, Reply
from genrouter.testing import dashscope as ds

pytestmark = pytest.mark.usefixtures("catalog_before_2026_retirements")  # names o3-mini etc.

KEYS = {"OPENAI_API_KEY": "sk-test-openai-0123456789", "DASHSCOPE_API_KEY": "sk-test-ds-987654321"}
HELLO: list[MessageParam] = [{"role": "user", "content": "Say hello"}]
FAST = {"attempts": 3, "backoff": {"initial_ms": 1, "max_ms": 5}}


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


def wire_config(server: FakeLLMServer, **route: Any) -> dict[str, Any]:
    route.setdefault("candidates", ["openai/o3-mini", "dashscope/qwen-max"])
    route.setdefault("retry", FAST)
    return {
        "providers": {
            "openai": {"type": "openai", "base_url": server.openai_base_url},
            "dashscope": {"type": "dashscope", "base_url": server.dashscope_base_url},
        },
        "routes": {"default": route},
    }


def bodies(server: FakeLLMServer) -> list[dict[str, Any]]:
    return [r.body for r in server.requests]


async def test_o3_mini_complete_applies_o_series_rules(server: FakeLLMServer) -> None:
    server.enqueue(Reply.text("Hello there"), model="o3-mini")
    async with AsyncClient(wire_config(server), env=KEYS) as client:
        resp = await client.chat.completions.create(
            model="openai/o3-mini",
            messages=[{"role": "system", "content": "be brief"}, *HELLO],
            max_tokens=50,
            temperature=0.2,
            reasoning_effort="low",
        )
    assert resp.choices[0].message.content == "Hello there"
    assert resp.usage is not None and resp.usage.completion_tokens > 0
    sent = bodies(server)[0]
    assert sent["messages"][0]["role"] == "developer"
    assert sent["max_completion_tokens"] == 50 and "max_tokens" not in sent
    assert "temperature" not in sent and sent["reasoning_effort"] == "low"
    assert resp.route is not None and resp.route.dropped_params == ["temperature"]
    assert resp.route.cost_usd is not None and resp.route.cost_usd > 0


async def test_stream_with_usage_and_final_completion(server: FakeLLMServer) -> None:
    server.enqueue(Reply(chunks=["Hel", "lo", " world"]), model="o3-mini")
    async with AsyncClient(wire_config(server), env=KEYS) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        async with stream:
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        final = stream.get_final_completion()
    assert text == "Hello world" == final.choices[0].message.content
    assert final.usage is not None and final.usage.completion_tokens > 0
    assert final.route is not None and final.route.ttft_ms is not None
    assert bodies(server)[0]["stream_options"] == {"include_usage": True}


async def test_429_with_retry_after_then_success(server: FakeLLMServer) -> None:
    server.enqueue(
        Reply.error(429, code="rate_limit_exceeded", headers={"Retry-After": "0.05"}),
        Reply.text("after the wait"),
        model="o3-mini",
    )
    async with AsyncClient(wire_config(server), env=KEYS) as client:
        resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.choices[0].message.content == "after the wait"
    assert resp.route is not None
    first = resp.route.attempts[0]
    assert first.error_type == "RateLimitError" and first.retry_delay_ms == pytest.approx(50)
    assert len(server.requests) == 2


async def test_5xx_exhausts_attempts_then_falls_back_to_dashscope(server: FakeLLMServer) -> None:
    server.enqueue(*[Reply.error(503, code="overloaded")] * 3, model="o3-mini")
    server.enqueue(Reply.text("Qwen here"), model="qwen-max")
    async with AsyncClient(wire_config(server), env=KEYS) as client:
        resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.choices[0].message.content == "Qwen here"
    assert resp.route is not None and resp.route.model == "dashscope/qwen-max"
    assert [a.status_code for a in resp.route.attempts] == [503, 503, 503, None]
    assert [r.path for r in server.requests][-1].endswith("/compatible-mode/v1/chat/completions")


async def test_auth_error_moves_on_at_once_and_never_leaks_the_key(server: FakeLLMServer) -> None:
    server.enqueue(
        Reply.error(401, code="invalid_api_key", message=f"bad key {KEYS['OPENAI_API_KEY']}"),
        model="o3-mini",
    )
    server.enqueue(ds.invalid_api_key(), model="qwen-max")
    async with AsyncClient(wire_config(server), env=KEYS) as client:
        with pytest.raises(AllCandidatesFailedError) as caught:
            await client.chat.completions.create(model="default", messages=HELLO)
    assert len(server.requests) == 2  # one attempt each: auth errors are not retried
    text = f"{caught.value!s} {caught.value!r} " + " ".join(
        f"{e!s} {e!r}" for e in caught.value.exceptions
    )
    assert caught.value.route is not None
    text += caught.value.route.model_dump_json()
    for key in KEYS.values():
        assert key not in text
    assert "region" in str(caught.value.exceptions[1]).lower()


async def test_stream_cut_midway_raises_with_partial_text(server: FakeLLMServer) -> None:
    server.enqueue(Reply(chunks=["one ", "two ", "three"], cut_after=2), model="o3-mini")
    async with AsyncClient(wire_config(server), env=KEYS) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        received = []
        with pytest.raises(StreamInterruptedError) as caught:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    received.append(chunk.choices[0].delta.content)
    assert caught.value.partial_text == "one two " == "".join(received)
    assert len(server.requests) == 1


async def test_resume_continues_on_dashscope_as_one_answer(server: FakeLLMServer) -> None:
    server.enqueue(Reply(chunks=["The sky ", "is ", "blue"], cut_after=2), model="o3-mini")
    server.enqueue(Reply(chunks=["blue today."]), model="qwen-max")
    async with AsyncClient(wire_config(server), env=KEYS) as client:
        stream = await client.chat.completions.create(
            model="default", messages=HELLO, stream=True, resume=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "The sky is blue today."
    final = stream.get_final_completion()
    assert final.route is not None and final.route.resumed
    prefix = bodies(server)[1]["messages"][-1]
    assert prefix == {"role": "assistant", "content": "The sky is ", "partial": True}


async def test_first_token_timeout_fails_over_with_no_duplicate(server: FakeLLMServer) -> None:
    server.enqueue(Reply(chunks=["late"], delay_first_token_s=5.0), model="o3-mini")
    server.enqueue(Reply(chunks=["on ", "time"]), model="qwen-max")
    async with AsyncClient(wire_config(server, first_token_timeout_s=1.0), env=KEYS) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "on time"
    assert stream.route.attempts[0].error_type == "FirstTokenTimeoutError"


async def test_closing_a_stream_early_releases_the_connection(server: FakeLLMServer) -> None:
    server.enqueue(Reply(chunks=[f"w{i} " for i in range(50)], delay_between_chunks_s=0.01))
    async with AsyncClient(wire_config(server), env=KEYS) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        async with stream:
            async for _ in stream:
                break
        assert await server.wait_for_connections(0) == 0


async def test_image_goes_to_qwen_vl_while_text_goes_to_the_cheapest_text_model(
    server: FakeLLMServer,
) -> None:
    config = {
        "providers": {
            "openai": {"type": "openai", "base_url": server.openai_base_url},
            "dashscope": {"type": "dashscope", "base_url": server.dashscope_base_url},
        },
        "routes": {
            "default": {
                "candidates": ["openai/o3-mini", "dashscope/qwen-max", "openai/gpt-4o"],
                "objective": "cost",
            },
            "vision": {
                "candidates": ["dashscope/qwen-vl-max", "openai/gpt-4o"],
                "objective": "cost",
            },
        },
        "rules": [{"when": {"input_modality": "image"}, "route": "vision"}],
    }
    image_message: MessageParam = {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ],
    }
    async with AsyncClient(config, env=KEYS) as client:
        text = await client.chat.completions.create(model="auto", messages=HELLO)
        image = await client.chat.completions.create(model="auto", messages=[image_message])
    assert text.route is not None and text.route.model == "openai/o3-mini"
    assert text.route.decision is not None and text.route.decision.objective == "cost"
    assert image.route is not None and image.route.model == "dashscope/qwen-vl-max"
    assert image.route.route == "vision" and image.route.decision is not None
    assert image.route.decision.rule == "rules[0]"
    sent = bodies(server)[1]
    assert sent["model"] == "qwen-vl-max"
    assert sent["messages"][0]["content"][1]["image_url"]["url"] == "https://example.com/cat.png"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sync_client_over_the_wire(server: FakeLLMServer) -> None:
    server.enqueue(Reply.text("sync hello"), Reply(chunks=["a", "b"]), model="o3-mini")
    with Client(wire_config(server), env=KEYS) as client:
        assert (
            client.chat.completions.create(model="default", messages=HELLO)
            .choices[0]
            .message.content
            == "sync hello"
        )
        with client.chat.completions.create(model="default", messages=HELLO, stream=True) as s:
            assert "".join(c.choices[0].delta.content or "" for c in s if c.choices) == "ab"


async def test_unreachable_provider_is_skipped_at_once_on_the_next_request(
    server: FakeLLMServer,
) -> None:
    config = wire_config(server)
    config["providers"]["openai"]["base_url"] = f"http://127.0.0.1:{_closed_port()}/v1"
    async with AsyncClient(config, env=KEYS) as client:
        first = await client.chat.completions.create(model="default", messages=HELLO)
        assert first.route is not None and first.route.model == "dashscope/qwen-max"
        assert first.route.attempts[0].error_type == "ProviderConnectionError"
        second = await client.chat.completions.create(model="default", messages=HELLO)
    assert second.route is not None and second.route.attempts[0].model == "dashscope/qwen-max"
    assert second.route.decision is not None
    o3 = second.route.decision.candidates[0]
    assert o3.excluded_because is not None and "unreachable" in o3.excluded_because


async def test_dashscope_throttling_is_retried_then_answers(server: FakeLLMServer) -> None:
    server.enqueue(
        ds.throttling(retry_after=0.05), Reply.text("after throttling"), model="qwen-max"
    )
    config = wire_config(server, candidates=["dashscope/qwen-max"])
    async with AsyncClient(config, env=KEYS) as client:
        resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.choices[0].message.content == "after throttling"
    assert resp.route is not None
    assert [a.error_type for a in resp.route.attempts] == ["RateLimitError", None]
    assert resp.route.attempts[0].retry_delay_ms == pytest.approx(50)


async def test_responses_validate_as_the_openai_sdk_types(server: FakeLLMServer) -> None:
    from openai.types.chat import ChatCompletion as OpenAIChatCompletion
    from openai.types.chat import ChatCompletionChunk as OpenAIChunk

    async with AsyncClient(wire_config(server), env=KEYS) as client:
        resp = await client.chat.completions.create(model="default", messages=HELLO)
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        chunks = [c async for c in stream]
    sdk = OpenAIChatCompletion.model_validate(resp.model_dump())
    assert sdk.choices[0].message.content == resp.choices[0].message.content
    for chunk in chunks:
        OpenAIChunk.model_validate(chunk.model_dump())
    final = OpenAIChatCompletion.model_validate(stream.get_final_completion().model_dump())
    assert final.usage is not None and final.usage.total_tokens > 0


async def test_closing_the_client_closes_its_pool(server: FakeLLMServer) -> None:
    client = AsyncClient(wire_config(server), env=KEYS)
    await client.chat.completions.create(model="default", messages=HELLO)
    pool = client._http
    assert pool is not None and not pool.is_closed
    await client.aclose()
    assert pool.is_closed
    assert await server.wait_for_connections(0) == 0
    with pytest.raises(Exception, match="closed"):
        await client.chat.completions.create(model="default", messages=HELLO)


async def test_opentelemetry_spans_follow_the_genai_conventions(server: FakeLLMServer) -> None:
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    export = pytest.importorskip("opentelemetry.sdk.trace.export")
    memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    exporter = memory.InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    server.enqueue(Reply.error(503), model="o3-mini")
    config = wire_config(server, retry={"attempts": 1})
    async with AsyncClient(config, env=KEYS, tracing=provider) as client:
        await client.chat.completions.create(model="default", messages=HELLO)
    # One request span, one child span per attempt (tests/test_observability.py has the rest).
    (span,) = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert span.name == "chat default"
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "default"
    assert attributes["gen_ai.response.model"] == "qwen-max"  # the vendor's, not genrouter's id
    assert attributes["genrouter.model"] == "dashscope/qwen-max"
    assert attributes["gen_ai.usage.input_tokens"] > 0
    children = [s for s in exporter.get_finished_spans() if s.parent is not None]
    outcomes = [dict(c.attributes or {})["genrouter.outcome"] for c in children]
    assert outcomes == ["error", "ok"]


async def test_retry_after_on_a_503_is_honoured_too(server: FakeLLMServer) -> None:
    server.enqueue(
        Reply.error(503, code="overloaded", headers={"Retry-After": "0.05"}),
        Reply.text("back"),
        model="o3-mini",
    )
    async with AsyncClient(wire_config(server), env=KEYS) as client:
        resp = await client.chat.completions.create(model="default", messages=HELLO)
    assert resp.route is not None
    assert resp.route.attempts[0].retry_delay_ms == pytest.approx(50)
    assert resp.route.fallbacks == 0  # a retry that succeeded is not a fallback
