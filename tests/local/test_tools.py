"""Tool calling on local models: the call format, forced calls by grammar, history round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from genrouter import AsyncClient, InvalidRequestError, MessageParam
from genrouter.providers.local import LocalProvider
from genrouter.providers.local._prompt import build_turns
from genrouter.providers.local._tools import parse_calls, plan_tools
from genrouter.request import build_request
from tests.local.conftest import grammar, make_call, make_spec

CITIES = ["Paris", "Tokyo", "Lima"]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": CITIES}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"utc": {"type": "boolean"}}},
    },
}
ASK: list[MessageParam] = [{"role": "user", "content": "Weather in Paris?"}]


def request(**params: Any) -> Any:
    return build_request({"model": "local/tiny", "messages": ASK, **params})


def test_tool_choice_forms() -> None:
    assert plan_tools(request()) is None
    assert plan_tools(request(tools=[WEATHER], tool_choice="none")) is None
    auto = plan_tools(request(tools=[WEATHER, TIME]))
    assert auto is not None and not auto.forced and auto.names == ("get_weather", "get_time")
    assert "get_weather" in auto.instructions and "plain text" in auto.instructions
    required = plan_tools(request(tools=[WEATHER, TIME], tool_choice="required"))
    assert required is not None and required.grammar is not None
    schema = json.loads(required.grammar.source or "")
    assert [c["properties"]["name"] for c in schema["items"]["anyOf"]] == [
        {"const": "get_weather"},
        {"const": "get_time"},
    ]
    assert "maxItems" not in schema  # parallel calls allowed by default
    named = plan_tools(
        request(
            tools=[WEATHER, TIME],
            tool_choice={"type": "function", "function": {"name": "get_time"}},
            parallel_tool_calls=False,
        )
    )
    assert named is not None and named.names == ("get_time",) and named.grammar is not None
    schema = json.loads(named.grammar.source or "")
    assert schema["maxItems"] == 1 and schema["items"]["properties"]["name"] == {
        "const": "get_time"
    }


@pytest.mark.parametrize(
    ("choice", "param"),
    [
        # Refused at the request door, which names the exact field.
        ({"type": "function", "function": {"name": "nope"}}, "tool_choice.function.name"),
        ("sometimes", "tool_choice"),
    ],
)
def test_bad_tool_choice_names_the_field(choice: Any, param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        plan_tools(request(tools=[WEATHER], tool_choice=choice))
    assert caught.value.param == param


def test_parse_calls_reads_only_the_call_format() -> None:
    plan = plan_tools(request(tools=[WEATHER], parallel_tool_calls=False))
    assert plan is not None
    calls = parse_calls('[{"name": "get_weather", "arguments": {"city": "Lima"}}]', plan)
    assert calls is not None and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Lima"} and calls[0].id.startswith("call_")
    assert parse_calls("It is sunny.", plan) is None
    assert parse_calls('[{"name": "rm_rf", "arguments": {}}]', plan) is None
    two = '[{"name": "get_weather", "arguments": {}}, {"name": "get_weather", "arguments": {}}]'
    assert parse_calls(two, plan) is None  # parallel_tool_calls=False


def test_history_round_trip_in_the_prompt() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "12:00"},
    ]
    req = build_request({"model": "local/tiny", "messages": messages, "tools": [WEATHER, TIME]})
    plan = plan_tools(req)
    assert plan is not None
    turns, _ = build_turns(req, make_spec(None), plan.instructions)
    assert [t.role for t in turns] == ["system", "user", "assistant", "user"]
    assert turns[0].text.startswith("You can call these functions") and "Be brief." in turns[0].text
    assert json.loads(turns[2].text) == [
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_time", "arguments": {}},
    ]
    assert turns[3].text == (
        "Result of get_weather (call call_1): sunny, 21C\nResult of get_time (call call_2): 12:00"
    )


pytestmark_llama = pytest.mark.skipif(
    __import__("importlib").util.find_spec("llama_cpp") is None, reason="needs llama-cpp-python"
)


@pytestmark_llama
async def test_forced_call_is_valid_complete_and_streamed(
    provider: LocalProvider, tiny_gguf: Path
) -> None:
    spec = make_spec(tiny_gguf, n_ctx=2048)  # a character-level vocabulary: long prompts
    forced = {"type": "function", "function": {"name": "get_weather"}}
    result = await provider.complete(
        make_call(spec, tools=[WEATHER, TIME], tool_choice=forced, temperature=0)
    )
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and [c.function.name for c in calls] == ["get_weather"]
    assert json.loads(calls[0].function.arguments)["city"] in CITIES

    chunks = [
        c
        async for c in provider.stream(
            make_call(spec, tools=[WEATHER], tool_choice="required", parallel_tool_calls=False)
        )
    ]
    deltas = [d for c in chunks for ch in c.choices for d in ch.delta.tool_calls or ()]
    assert len(deltas) == 1 and deltas[0].function is not None
    assert deltas[0].function.name == "get_weather" and deltas[0].id
    assert json.loads(deltas[0].function.arguments or "")["city"] in CITIES
    finishes = [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]
    assert finishes == ["tool_calls"]
    assert not any(ch.delta.content for c in chunks for ch in c.choices)


@pytestmark_llama
async def test_auto_tells_calls_from_text(provider: LocalProvider, tiny_gguf: Path) -> None:
    spec = make_spec(tiny_gguf, n_ctx=2048)
    as_call = '[{"name": "get_weather", "arguments": {"city": "Tokyo"}}]'
    called = await provider.complete(
        make_call(spec, tools=[WEATHER], provider_options=grammar(as_call))
    )
    texted = await provider.complete(
        make_call(spec, tools=[WEATHER], provider_options=grammar("  It is sunny."))
    )
    calls = called.choices[0].message.tool_calls
    assert calls is not None and json.loads(calls[0].function.arguments) == {"city": "Tokyo"}
    assert called.choices[0].finish_reason == "tool_calls"
    assert texted.choices[0].message.tool_calls is None
    assert texted.choices[0].message.content == "  It is sunny."
    assert texted.choices[0].finish_reason == "stop"


@pytestmark_llama
async def test_multi_turn_tool_loop_through_the_client(tiny_gguf: Path) -> None:
    config = {
        "providers": {"local": {"type": "local"}},
        "models": {
            "local/tiny": {
                "model": "tiny",
                "local": True,
                "path": str(tiny_gguf),
                "n_ctx": 4096,
                "context_window": 4096,
                "max_output_tokens": 200,
                "tools": True,
                "json_schema": True,
                "json_object": True,
            }
        },
        "routes": {"default": {"candidates": ["local/tiny"]}},
    }
    messages: list[Any] = list(ASK)
    async with AsyncClient(config, env={}) as client:
        first = await client.chat.completions.create(
            model="local/tiny", messages=messages, tools=[WEATHER], tool_choice="required"
        )
        message = first.choices[0].message
        assert message.tool_calls is not None
        messages.append(message.model_dump(exclude_none=True, exclude={"refusal"}))
        for call in message.tool_calls:
            city = json.loads(call.function.arguments)["city"]
            messages.append({"role": "tool", "tool_call_id": call.id, "content": f"{city}: sun"})
        second = await client.chat.completions.create(
            model="local/tiny",
            messages=messages,
            tools=[WEATHER],
            provider_options=grammar("Sunny."),
        )
    assert second.choices[0].message.content == "Sunny."
    assert second.choices[0].message.tool_calls is None
    assert first.usage is not None and second.usage is not None
    # The call and its result went back into the prompt.
    assert second.usage.prompt_tokens > first.usage.prompt_tokens


@pytestmark_llama
async def test_parse_on_a_local_model_uses_a_schema_grammar(tiny_gguf: Path) -> None:
    from typing import Literal

    from pydantic import BaseModel

    class Verdict(BaseModel):
        answer: Literal["yes", "no"]
        sure: bool

    config = {
        "providers": {"local": {"type": "local"}},
        "models": {
            "local/tiny": {
                "model": "tiny",
                "local": True,
                "path": str(tiny_gguf),
                "n_ctx": 1024,
                "context_window": 1024,
                "max_output_tokens": 100,
                "tools": True,
                "json_schema": True,
                "json_object": True,
            }
        },
        "routes": {"default": {"candidates": ["local/tiny"]}},
    }
    async with AsyncClient(config, env={}) as client:
        resp = await client.chat.completions.parse(
            model="local/tiny", messages=ASK, response_format=Verdict, temperature=0
        )
    parsed = resp.choices[0].message.parsed
    assert isinstance(parsed, Verdict) and parsed.answer in ("yes", "no")
    assert resp.route is not None and resp.route.model == "local/tiny"
