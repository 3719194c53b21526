"""The gateway driven by the official openai SDK: answers, streams, tools, parse(), faults."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam
from pydantic import BaseModel

from genrouter.testing import FakeLLMServer, Reply
from tests.gateway_helpers import (
    FAKE_PROVIDER_KEY,
    InProcessGateway,
    in_process_gateway,
    two_upstreams,
)

HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def upstreams() -> Iterator[tuple[FakeLLMServer, FakeLLMServer]]:
    with FakeLLMServer() as first, FakeLLMServer() as second:
        yield first, second


@pytest.fixture
def gateway(upstreams: tuple[FakeLLMServer, FakeLLMServer]) -> Iterator[InProcessGateway]:
    first, second = upstreams
    with in_process_gateway(two_upstreams(first.openai_base_url, second.openai_base_url)) as gw:
        yield gw


def sdk(gateway: InProcessGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


def async_sdk(gateway: InProcessGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


def test_sync_completion_with_route_headers(
    gateway: InProcessGateway, upstreams: tuple[FakeLLMServer, FakeLLMServer]
) -> None:
    upstreams[0].enqueue(Reply.text("Tokyo is the capital."))
    with sdk(gateway) as client:
        raw = client.chat.completions.with_raw_response.create(model="default", messages=HI)
        completion = raw.parse()
    assert completion.choices[0].message.content == "Tokyo is the capital."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert raw.headers["x-genrouter-model"] == "up1/m"
    assert raw.headers["x-genrouter-route"] == "default"
    assert raw.headers["x-genrouter-attempts"] == "1"
    assert float(raw.headers["x-genrouter-cost-usd"]) > 0
    # The upstream got the provider key, the caller's key went nowhere.
    sent = upstreams[0].requests[-1]
    assert sent.headers["authorization"] == f"Bearer {FAKE_PROVIDER_KEY}"


async def test_async_stream_usage_only_when_asked(
    gateway: InProcessGateway, upstreams: tuple[FakeLLMServer, FakeLLMServer]
) -> None:
    client = async_sdk(gateway)
    async with client:
        upstreams[0].enqueue(Reply.text("one two three"))
        stream = await client.chat.completions.create(model="default", messages=HI, stream=True)
        chunks = [chunk async for chunk in stream]
        assert all(chunk.choices for chunk in chunks)
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        assert text == "one two three"
        assert chunks[-1].choices[0].finish_reason == "stop"

        upstreams[0].enqueue(Reply.text("one two three"))
        stream = await client.chat.completions.create(
            model="default",
            messages=HI,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert all(c.usage is None for c in chunks[:-1])


def test_sse_framing_is_openais(
    gateway: InProcessGateway, upstreams: tuple[FakeLLMServer, FakeLLMServer]
) -> None:
    upstreams[0].enqueue(Reply.text("a b"))
    body = {"model": "default", "messages": HI, "stream": True}
    with httpx2.stream("POST", gateway.base_url + "/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(response.iter_bytes())
    events = raw.split(b"\n\n")
    assert events[-1] == b"" and events[-2] == b"data: [DONE]"
    assert all(e.startswith(b"data: {") for e in events[:-2])


def test_tools_streamed_and_not(
    gateway: InProcessGateway, upstreams: tuple[FakeLLMServer, FakeLLMServer]
) -> None:
    tools: list[ChatCompletionToolParam] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    upstreams[0].enqueue(Reply.tool_call("get_weather", {"city": "Paris"}))
    upstreams[0].enqueue(Reply.tool_call("get_weather", {"city": "Oslo"}))
    with sdk(gateway) as client:
        answer = client.chat.completions.create(model="default", messages=HI, tools=tools)
        calls = answer.choices[0].message.tool_calls
        assert calls is not None and calls[0].type == "function"
        assert calls[0].function.name == "get_weather"
        assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
        assert answer.choices[0].finish_reason == "tool_calls"
        args = ""
        stream = client.chat.completions.create(
            model="default",
            messages=HI,
            tools=tools,
            stream=True,
        )
        for chunk in stream:
            for delta_call in chunk.choices[0].delta.tool_calls or []:
                args += (delta_call.function.arguments if delta_call.function else None) or ""
    assert args == '{"city": "Oslo"}'
    assert upstreams[0].requests[-1].body["tools"][0]["function"]["name"] == "get_weather"


class City(BaseModel):
    name: str
    population: int


def test_parse_with_a_pydantic_model(
    gateway: InProcessGateway, upstreams: tuple[FakeLLMServer, FakeLLMServer]
) -> None:
    upstreams[0].enqueue(Reply.text('{"name": "Tokyo", "population": 14000000}'))
    with sdk(gateway) as client:
        parsed = client.chat.completions.parse(
            model="default",
            messages=HI,
            response_format=City,
        )
    assert parsed.choices[0].message.parsed == City(name="Tokyo", population=14000000)
    assert upstreams[0].requests[-1].body["response_format"]["type"] == "json_schema"


def test_failover_before_content(
    gateway: InProcessGateway, upstreams: tuple[FakeLLMServer, FakeLLMServer]
) -> None:
    upstreams[0].enqueue(Reply.error(500, message="down"))
    upstreams[1].enqueue(Reply.text("from the second"))
    with sdk(gateway) as client:
        raw = client.chat.completions.with_raw_response.create(model="default", messages=HI)
    assert raw.parse().choices[0].message.content == "from the second"
    assert raw.headers["x-genrouter-model"] == "up2/m"
    assert raw.headers["x-genrouter-attempts"] == "2"


def test_cooldown_skips_a_rate_limited_upstream(
    gateway: InProcessGateway, upstreams: tuple[FakeLLMServer, FakeLLMServer]
) -> None:
    upstreams[0].enqueue(Reply.error(429, message="slow down", headers={"retry-after": "60"}))
    with sdk(gateway) as client:
        first = client.chat.completions.with_raw_response.create(model="default", messages=HI)
        calls = len(upstreams[0].requests)
        second = client.chat.completions.with_raw_response.create(model="default", messages=HI)
    assert first.headers["x-genrouter-model"] == "up2/m"
    assert second.headers["x-genrouter-model"] == "up2/m"
    assert second.headers["x-genrouter-attempts"] == "1"
    assert len(upstreams[0].requests) == calls  # cooling down: not called again


def test_stream_cut_after_content_ends_with_an_error_event(
    gateway: InProcessGateway, upstreams: tuple[FakeLLMServer, FakeLLMServer]
) -> None:
    upstreams[0].enqueue(Reply.text("one two three four five six", cut_after=3))
    received = ""
    with sdk(gateway) as client:
        stream = client.chat.completions.create(model="default", messages=HI, stream=True)
        with pytest.raises(openai.APIError) as caught:
            for chunk in stream:
                received += chunk.choices[0].delta.content or ""
    assert received == "one two three"
    assert caught.value.code == "stream_interrupted"
    assert caught.value.type == "server_error"
    # On the wire: the error event, and no [DONE].
    upstreams[0].enqueue(Reply.text("one two three four five six", cut_after=3))
    body = {"model": "default", "messages": HI, "stream": True}
    with httpx2.stream("POST", gateway.base_url + "/chat/completions", json=body) as response:
        raw = b"".join(response.iter_bytes())
    assert b"[DONE]" not in raw
    last = raw.rstrip(b"\n").split(b"\n\n")[-1]
    assert last.startswith(b'data: {"error": {"message": ')
    assert b'"code": "stream_interrupted"' in last


def test_stream_cut_with_resume_looks_whole(
    upstreams: tuple[FakeLLMServer, FakeLLMServer],
) -> None:
    first, second = upstreams
    config = two_upstreams(first.openai_base_url, second.openai_base_url, resume=True)
    first.enqueue(Reply.text("one two three four", cut_after=2))
    second.enqueue(Reply.text(" three four"))
    with in_process_gateway(config) as gw, sdk(gw) as client:
        stream = client.chat.completions.create(model="default", messages=HI, stream=True)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == "one two three four"
    assert len(second.requests) == 1


def test_upstreams_down_is_503() -> None:
    from tests.real_servers import free_port

    dead = f"http://127.0.0.1:{free_port()}/v1"
    with (
        in_process_gateway(two_upstreams(dead, dead)) as gw,
        sdk(gw) as client,
        pytest.raises(openai.InternalServerError) as caught,
    ):
        client.chat.completions.create(model="default", messages=HI)
    assert caught.value.status_code == 503
    assert caught.value.code == "upstream_unavailable"


def test_route_info_in_the_body_when_asked(
    gateway: InProcessGateway, upstreams: tuple[FakeLLMServer, FakeLLMServer]
) -> None:
    upstreams[0].enqueue(Reply.text("hi"), Reply.text("hi"))
    with sdk(gateway) as client:
        plain = client.chat.completions.create(model="default", messages=HI)
        asked = client.chat.completions.create(
            model="default",
            messages=HI,
            extra_headers={"x-genrouter-route-info": "true"},
        )
    assert "genrouter_route" not in (plain.model_extra or {})
    route = (asked.model_extra or {})["genrouter_route"]
    assert route["model"] == "up1/m" and route["decision"]["plan"] == ["up1/m", "up2/m"]


def test_stream_route_info_event_when_asked(
    gateway: InProcessGateway, upstreams: tuple[FakeLLMServer, FakeLLMServer]
) -> None:
    upstreams[0].enqueue(Reply.text("a b c"))
    with sdk(gateway) as client:
        stream = client.chat.completions.create(
            model="auto",
            messages=HI,
            stream=True,
            extra_headers={"x-genrouter-route-info": "true"},
        )
        chunks = list(stream)
    last = chunks[-1]
    assert last.choices == []
    route = (last.model_extra or {})["genrouter_route"]
    assert route["model"] == "up1/m" and route["usage"]["completion_tokens"] > 0


def test_models_lists_routes_auto_and_usable_models_with_lifecycle(
    gateway: InProcessGateway,
) -> None:
    with sdk(gateway) as client:
        models = {m.id: m for m in client.models.list()}
    assert {"auto", "default", "up1/m", "up2/m"} <= set(models)
    assert (models["default"].model_extra or {})["genrouter"]["candidates"] == ["up1/m", "up2/m"]
    info = (models["up1/m"].model_extra or {})["genrouter"]
    assert info["kind"] == "model" and info["lifecycle"] == "live"
    assert "shutdown_on" in info and models["up1/m"].owned_by == "up1"
    assert "openai/gpt-6-luna" not in models  # no OpenAI key here: not usable, not listed


def test_metrics_and_healthz(
    gateway: InProcessGateway, upstreams: tuple[FakeLLMServer, FakeLLMServer]
) -> None:
    upstreams[0].enqueue(Reply.error(500, message="down"), Reply.text("a b"))
    with sdk(gateway) as client:
        client.chat.completions.create(model="default", messages=HI)
        list(client.chat.completions.create(model="default", messages=HI, stream=True))
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="nope", messages=HI)
    assert httpx2.get(gateway.root + "/healthz").json() == {"status": "ok"}
    response = httpx2.get(gateway.root + "/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert 'genrouter_gateway_requests_total{model="up2/m",status="200",tenant="local"} 1' in text
    assert 'genrouter_gateway_requests_total{model="up1/m",status="200",tenant="local"} 1' in text
    assert 'genrouter_gateway_errors_total{type="model_not_found"} 1' in text
    assert 'genrouter_gateway_tokens_total{model="up1/m",kind="completion"} 2' in text
    assert re.search(r'genrouter_gateway_cost_usd_total\{model="up2/m"\} 0\.0\d+', text)
    assert "genrouter_gateway_ttft_seconds_count 1" in text
    assert 'genrouter_gateway_request_duration_seconds_count{stream="false"} 2' in text
    assert re.search(r'genrouter_gateway_circuit_state\{model="up1/m"\} 0', text)
    assert "# TYPE genrouter_gateway_request_duration_seconds histogram" in text


def test_all_rate_limited_upstreams_are_429_with_retry_after(
    gateway: InProcessGateway, upstreams: tuple[FakeLLMServer, FakeLLMServer]
) -> None:
    for server in upstreams:
        server.enqueue(Reply.error(429, message="slow", headers={"retry-after": "7"}))
    with sdk(gateway) as client, pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="default", messages=HI)
    assert limited.value.code == "upstream_rate_limited"
    assert limited.value.response.headers["retry-after"] == "7"


def test_a_caller_that_goes_away_closes_the_upstream_stream(
    gateway: InProcessGateway, upstreams: tuple[FakeLLMServer, FakeLLMServer]
) -> None:
    words = " ".join(f"w{i}" for i in range(60))
    upstreams[0].enqueue(Reply.text(words, delay_between_chunks_s=0.2))
    body = {"model": "default", "messages": HI, "stream": True}
    with httpx2.stream("POST", gateway.base_url + "/chat/completions", json=body) as response:
        next(response.iter_bytes())
    deadline = time.monotonic() + 10
    while upstreams[0].connections_open and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstreams[0].connections_open == 0  # long before the 12 s the answer would take
    text = httpx2.get(gateway.root + "/metrics").text
    assert 'genrouter_gateway_requests_total{model="up1/m",status="499",tenant="local"} 1' in text


def test_a_passed_deadline_is_504(upstreams: tuple[FakeLLMServer, FakeLLMServer]) -> None:
    first, second = upstreams
    config = two_upstreams(first.openai_base_url, second.openai_base_url)
    config["routes"]["default"]["deadline_s"] = 0.5
    first.enqueue(Reply.text("late", delay_headers_s=5))
    with (
        in_process_gateway(config) as gw,
        sdk(gw) as client,
        pytest.raises(openai.APIStatusError) as late,
    ):
        client.chat.completions.create(model="default", messages=HI)
    assert late.value.status_code == 504
    assert late.value.code == "deadline_exceeded"
