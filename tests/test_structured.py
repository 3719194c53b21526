"""Structured output: ``parse()`` and ``response_format=MyModel``, over the fake server's wire."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, assert_type

import openai
import pytest
from pydantic import BaseModel

from genrouter import (
    AllCandidatesFailedError,
    AsyncClient,
    Client,
    InvalidRequestError,
    MessageParam,
    StructuredOutputError,
)
from genrouter.structured import ParsedChatCompletion, response_format_param
from genrouter.testing import FakeLLMServer, Reply

# Not about lifecycle: judge models as of before the 2026 retirements (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("catalog_before_2026_retirements")

KEYS = {"OPENAI_API_KEY": "sk-test-openai-0123456789", "DASHSCOPE_API_KEY": "sk-test-ds-98765"}
ASK: list[MessageParam] = [{"role": "user", "content": "Weather in Paris?"}]
FAST = {"attempts": 3, "backoff": {"initial_ms": 1, "max_ms": 5}}
# Capabilities are declared, never left to defaults.
CAPABLE = {"json_schema": True, "json_object": True, "tools": True, "context_window": 8192}


class Weather(BaseModel):
    city: str
    temp_c: int


class GetWeather(BaseModel):
    """Current weather for a city."""

    city: str


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


def config(server: FakeLLMServer, *candidates: str) -> dict[str, Any]:
    return {
        "providers": {
            "openai": {"type": "openai", "base_url": server.openai_base_url},
            "compat": {"type": "openai_compatible", "base_url": server.openai_base_url},
            "dashscope": {"type": "dashscope", "base_url": server.dashscope_base_url},
        },
        "models": {
            "openai/gpt-4o-mini": CAPABLE,
            "compat/m1": CAPABLE,
            "dashscope/qwen-plus": {**CAPABLE, "model": "qwen-plus"},
        },
        "routes": {
            "default": {"candidates": list(candidates or ["openai/gpt-4o-mini"]), "retry": FAST}
        },
    }


def test_schema_is_openai_sdks_strict_schema() -> None:
    param = response_format_param(Weather)
    sdk_tool = openai.pydantic_function_tool(Weather, name="Weather")
    assert param["type"] == "json_schema"
    assert param["json_schema"]["name"] == "Weather" and param["json_schema"]["strict"] is True
    assert param["json_schema"]["schema"] == sdk_tool["function"]["parameters"]
    schema = param["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["city", "temp_c"]


async def test_async_parse_returns_the_instance(server: FakeLLMServer) -> None:
    server.enqueue(Reply.text('{"city": "Paris", "temp_c": 21}'))
    async with AsyncClient(config(server), env=KEYS) as client:
        resp = await client.chat.completions.parse(
            model="default", messages=ASK, response_format=Weather
        )
    assert isinstance(resp, ParsedChatCompletion)
    message = resp.choices[0].message
    assert_type(message.parsed, Weather | None)  # what mypy (strict) sees, as with openai
    assert message.parsed == Weather(city="Paris", temp_c=21)
    assert message.refusal is None
    assert resp.route is not None and resp.route.model == "openai/gpt-4o-mini"
    sent = server.requests[0].body["response_format"]
    assert sent == response_format_param(Weather)
    # The dump is OpenAI's JSON, parsed included.
    assert resp.model_dump()["choices"][0]["message"]["parsed"] == {"city": "Paris", "temp_c": 21}


def test_sync_parse(server: FakeLLMServer) -> None:
    server.enqueue(Reply.text('{"city": "Oslo", "temp_c": -3}'))
    with Client(config(server), env=KEYS) as client:
        resp = client.chat.completions.parse(
            model="openai/gpt-4o-mini", messages=ASK, response_format=Weather
        )
    assert resp.choices[0].message.parsed == Weather(city="Oslo", temp_c=-3)


async def test_create_accepts_a_model_class(server: FakeLLMServer) -> None:
    server.enqueue(Reply.text('{"city": "Rome", "temp_c": 30}'))
    server.enqueue(Reply(chunks=['{"city": ', '"Rome", "temp_c": 30}']))
    async with AsyncClient(config(server), env=KEYS) as client:
        resp = await client.chat.completions.create(
            model="default", messages=ASK, response_format=Weather
        )
        stream = await client.chat.completions.create(
            model="default", messages=ASK, response_format=Weather, stream=True
        )
        async for _chunk in stream:
            pass
        final = stream.get_final_completion()
    assert isinstance(resp, ParsedChatCompletion)
    assert resp.choices[0].message.parsed == Weather(city="Rome", temp_c=30)
    assert [r.body["response_format"] for r in server.requests] == [
        response_format_param(Weather)
    ] * 2
    content = final.choices[0].message.content
    assert content is not None and Weather.model_validate_json(content).city == "Rome"


async def test_refusal_is_kept_and_parsed_is_none(server: FakeLLMServer) -> None:
    server.enqueue(Reply(refusal="I can't help with that."))
    async with AsyncClient(config(server), env=KEYS) as client:
        resp = await client.chat.completions.parse(
            model="default", messages=ASK, response_format=Weather
        )
    assert resp.choices[0].message.refusal == "I can't help with that."
    assert resp.choices[0].message.parsed is None


async def test_invalid_answer_falls_back_to_the_next_candidate(server: FakeLLMServer) -> None:
    server.enqueue(Reply.text('{"city": "Paris"}'), model="gpt-4o-mini")  # temp_c missing
    server.enqueue(Reply.text('{"city": "Paris", "temp_c": 19}'), model="m1")
    async with AsyncClient(config(server, "openai/gpt-4o-mini", "compat/m1"), env=KEYS) as client:
        resp = await client.chat.completions.parse(
            model="default", messages=ASK, response_format=Weather
        )
    assert resp.choices[0].message.parsed == Weather(city="Paris", temp_c=19)
    assert resp.route is not None
    first, second = resp.route.attempts
    assert (first.model, first.outcome, first.error_type) == (
        "openai/gpt-4o-mini",
        "error",
        "StructuredOutputError",
    )
    assert first.error is not None and "temp_c" in first.error
    assert (second.model, second.outcome) == ("compat/m1", "ok")


async def test_every_candidate_invalid_raises_all_failed(server: FakeLLMServer) -> None:
    server.enqueue(Reply.text("Paris is sunny"), model="gpt-4o-mini")
    server.enqueue(Reply.text('{"city": "Paris", "temp_c": 2', finish_reason="length"), model="m1")
    async with AsyncClient(config(server, "openai/gpt-4o-mini", "compat/m1"), env=KEYS) as client:
        with pytest.raises(AllCandidatesFailedError) as caught:
            await client.chat.completions.parse(
                model="default", messages=ASK, response_format=Weather
            )
    errors = caught.value.exceptions
    assert [type(e) for e in errors] == [StructuredOutputError, StructuredOutputError]
    first, second = errors
    assert isinstance(first, StructuredOutputError) and first.content == "Paris is sunny"
    assert "cut off" in str(second)


async def test_pydantic_tools_get_parsed_arguments(server: FakeLLMServer) -> None:
    server.enqueue(Reply.tool_call("GetWeather", {"city": "Lima"}), model="gpt-4o-mini")
    server.enqueue(Reply.tool_call("GetWeather", '{"town": "Lima"}'), model="gpt-4o-mini")
    tools = [openai.pydantic_function_tool(GetWeather)]
    async with AsyncClient(config(server), env=KEYS) as client:
        resp = await client.chat.completions.parse(model="default", messages=ASK, tools=tools)
        with pytest.raises(AllCandidatesFailedError) as caught:
            await client.chat.completions.parse(model="default", messages=ASK, tools=tools)
    call = resp.choices[0].message.tool_calls
    assert call is not None and call[0].function.parsed_arguments == GetWeather(city="Lima")
    assert resp.choices[0].message.parsed is None
    assert isinstance(caught.value.exceptions[0], StructuredOutputError)
    sent = server.requests[0].body["tools"][0]["function"]
    assert sent["strict"] is True and sent["name"] == "GetWeather"
    assert sent["parameters"] == openai.pydantic_function_tool(GetWeather)["function"]["parameters"]


async def test_strict_dict_tool_arguments_are_json_loaded(server: FakeLLMServer) -> None:
    server.enqueue(Reply.tool_call("lookup", {"q": "x"}))
    tool = {
        "type": "function",
        "function": {"name": "lookup", "strict": True, "parameters": {"type": "object"}},
    }
    async with AsyncClient(config(server), env=KEYS) as client:
        resp = await client.chat.completions.parse(model="default", messages=ASK, tools=[tool])
    calls = resp.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.parsed_arguments == {"q": "x"}


async def test_bad_parse_arguments_are_refused_before_sending(server: FakeLLMServer) -> None:
    async with AsyncClient(config(server), env=KEYS) as client:
        with pytest.raises(InvalidRequestError) as caught:
            await client.chat.completions.parse(model="default", messages=ASK, stream=True)
        assert caught.value.param == "stream"
        with pytest.raises(InvalidRequestError) as caught:
            await client.chat.completions.parse(
                model="default",
                messages=ASK,
                response_format=int,  # type: ignore[type-var]
            )
        assert caught.value.param == "response_format"
    assert server.requests == []


async def test_dict_response_format_passes_through_unparsed(server: FakeLLMServer) -> None:
    server.enqueue(Reply.text('{"a": 1}'))
    async with AsyncClient(config(server), env=KEYS) as client:
        resp = await client.chat.completions.parse(
            model="default", messages=ASK, response_format={"type": "json_object"}
        )
    assert resp.choices[0].message.parsed is None
    assert json.loads(resp.choices[0].message.content or "") == {"a": 1}
    assert server.requests[0].body["response_format"] == {"type": "json_object"}


async def test_dashscope_json_schema_and_json_keyword(server: FakeLLMServer) -> None:
    server.enqueue(Reply.text('{"city": "Hangzhou", "temp_c": 25}'))
    server.enqueue(Reply.text('{"ok": true}'))
    server.enqueue(Reply.text('{"ok": true}'))
    async with AsyncClient(config(server, "dashscope/qwen-plus"), env=KEYS) as client:
        resp = await client.chat.completions.parse(
            model="default", messages=ASK, response_format=Weather
        )
        await client.chat.completions.create(
            model="default", messages=ASK, response_format={"type": "json_object"}
        )
        await client.chat.completions.create(
            model="default",
            messages=[{"role": "system", "content": "Be brief."}, *ASK],
            response_format={"type": "json_object"},
        )
    assert resp.choices[0].message.parsed == Weather(city="Hangzhou", temp_c=25)
    schema_body, plain_body, system_body = (r.body for r in server.requests)
    assert server.requests[0].path.endswith("/compatible-mode/v1/chat/completions")
    assert schema_body["response_format"] == response_format_param(Weather)
    assert schema_body["messages"] == ASK  # json_schema needs no keyword
    # json_object without the word JSON in the messages is a 400 on DashScope: a hint is added.
    assert plain_body["messages"][0] == {"role": "system", "content": "Answer in JSON."}
    assert system_body["messages"][0]["content"] == "Be brief.\n\nAnswer in JSON."


async def test_route_dry_run_accepts_a_model_class(server: FakeLLMServer) -> None:
    async with AsyncClient(config(server, "dashscope/qwen-max", "compat/m1"), env=KEYS) as client:
        decision = client.route(messages=ASK, response_format=Weather)
    # qwen-max is catalogued with json_object only: a schema request routes past it.
    assert decision.plan == ("compat/m1",)
    excluded = {c.model: c.excluded_because for c in decision.candidates}
    assert (excluded["dashscope/qwen-max"] or "").startswith(
        "needs JSON-schema output; model lacks it"
    )
    assert server.requests == []


def test_structured_output_error_moves_on_without_retrying() -> None:
    from genrouter.config import RetryConfig
    from genrouter.errors import ResponseFormatError
    from genrouter.routing.policy import Action, classify

    error = StructuredOutputError("bad", provider="openai", model="gpt-4o-mini")
    assert isinstance(error, ResponseFormatError)
    assert classify(error, RetryConfig()) is Action.NEXT
    # A malformed body (not a schema mismatch) is still retried as before.
    assert classify(ResponseFormatError("bad json"), RetryConfig()) is Action.RETRY


def test_schema_cache_is_per_call_site_and_copies() -> None:
    cache: dict[type[BaseModel], dict[str, Any]] = {}
    first = response_format_param(Weather, cache)
    first["type"] = "changed by the caller"
    second = response_format_param(Weather, cache)
    assert second == response_format_param(Weather) and list(cache) == [Weather]
    assert second["json_schema"] is cache[Weather]["json_schema"]  # built once
    assert AsyncClient({}, env={})._schemas is not AsyncClient({}, env={})._schemas
