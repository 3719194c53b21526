"""History round trips of PARSED answers (``parse()``), on the fake servers' recorded wire.

``client.chat.completions.parse(..., response_format=Model)`` answers with ``message.parsed``,
and tools made with ``openai.pydantic_function_tool`` with ``parsed_arguments`` on each tool
call. Callers append that message to ``messages`` as it is or as one of its dumps, as they do
with the openai SDK's own ``ParsedChatCompletionMessage``. genrouter takes every form and sends
neither field: they repeat the content and the arguments, and OpenAI answers unknown message
fields with a 400.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from genrouter import AsyncClient
from genrouter.testing import FakeLLMServer, Reply

pytestmark = pytest.mark.usefixtures("catalog_before_2026_retirements")

KEY = {"OPENAI_API_KEY": "sk-test", "DASHSCOPE_API_KEY": "sk-test"}
ASK: list[Any] = [{"role": "user", "content": "Weather in Paris, as JSON"}]
MORE: dict[str, Any] = {"role": "user", "content": "And tomorrow?"}
ANSWER_JSON = '{"city":"Paris","celsius":21}'
CALL: dict[str, Any] = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "GetWeather", "arguments": '{"city":"Paris"}'},
}
# (model, what an assistant turn that calls tools carries as content on that vendor's wire)
TARGETS = [("openai/gpt-4o-mini", None), ("dashscope/qwen-max", ""), ("vllm/llama", "")]


class Forecast(BaseModel):
    city: str
    celsius: int


class GetWeather(BaseModel):
    city: str


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


def client_for(server: FakeLLMServer) -> AsyncClient:
    config = {
        "providers": {
            "openai": {"type": "openai", "base_url": server.openai_base_url},
            "dashscope": {"type": "dashscope", "base_url": server.dashscope_base_url},
            "vllm": {"type": "openai_compatible", "base_url": server.openai_base_url},
        }
    }
    return AsyncClient(config, env=KEY)


def forms(message: Any, *, warnings: bool = True) -> list[Any]:
    """The message as callers hand it back: the object and its dumps.

    *warnings*: the openai SDK's own parsed messages warn when dumped (its generic ``parsed``
    field is typed ``None`` at run time); that is the SDK's, not genrouter's.
    """
    return [
        message,
        message.model_dump(warnings=warnings),
        message.model_dump(mode="json", warnings=warnings),
        message.model_dump(exclude_unset=True, warnings=warnings),
        message.model_dump(exclude_none=True, warnings=warnings),
    ]


async def sent_back(client: AsyncClient, server: FakeLLMServer, turn: Any) -> list[dict[str, Any]]:
    """The assistant turn as each vendor received it, *turn* sent as the second message."""
    seen: list[dict[str, Any]] = []
    for model, _ in TARGETS:
        tool_result: Any = {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
        messages: list[Any] = [*ASK, turn, tool_result if _has_calls(turn) else MORE]
        await client.chat.completions.create(model=model, messages=messages)
        seen.append(server.requests[-1].body["messages"][1])
    return seen


def _has_calls(turn: Any) -> bool:
    calls = turn.get("tool_calls") if isinstance(turn, dict) else turn.tool_calls
    return bool(calls)


async def test_parsed_content_message_round_trips_in_every_form(server: FakeLLMServer) -> None:
    async with client_for(server) as client:
        server.enqueue(Reply.text(ANSWER_JSON))
        resp = await client.chat.completions.parse(
            model="openai/gpt-4o-mini", messages=ASK, response_format=Forecast
        )
        message = resp.choices[0].message
        assert message.parsed == Forecast(city="Paris", celsius=21)
        for form in forms(message):
            for sent in await sent_back(client, server, form):
                assert sent == {"role": "assistant", "content": ANSWER_JSON}


async def test_parsed_tool_call_message_round_trips_in_every_form(server: FakeLLMServer) -> None:
    tools = [openai.pydantic_function_tool(GetWeather)]
    async with client_for(server) as client:
        server.enqueue(Reply(tool_calls=[CALL]))
        resp = await client.chat.completions.parse(
            model="openai/gpt-4o-mini", messages=ASK, tools=tools
        )
        message = resp.choices[0].message
        assert message.tool_calls is not None
        assert message.tool_calls[0].function.parsed_arguments == GetWeather(city="Paris")
        for form in forms(message):
            for (model, content), sent in zip(
                TARGETS, await sent_back(client, server, form), strict=True
            ):
                expected: dict[str, Any] = {"role": "assistant", "tool_calls": [CALL]}
                if content is not None:
                    expected["content"] = content
                assert sent == expected, model


async def test_streamed_parse_final_message_round_trips(server: FakeLLMServer) -> None:
    async with client_for(server) as client:
        server.enqueue(Reply.text(ANSWER_JSON))
        async with client.chat.completions.stream(
            model="openai/gpt-4o-mini", messages=ASK, response_format=Forecast
        ) as stream:
            async for _event in stream:
                pass
            final = await stream.get_final_completion()
        message = final.choices[0].message
        assert message.parsed == Forecast(city="Paris", celsius=21)
        for form in forms(message):
            for sent in await sent_back(client, server, form):
                assert sent == {"role": "assistant", "content": ANSWER_JSON}


async def test_openai_sdks_own_parsed_messages_round_trip(server: FakeLLMServer) -> None:
    # The SDK's own parse() against the same fake server gives its ParsedChatCompletionMessage.
    sdk = openai.AsyncOpenAI(api_key="sk-test", base_url=server.openai_base_url, max_retries=0)
    server.enqueue(Reply.text(ANSWER_JSON))
    content = await sdk.chat.completions.parse(
        model="gpt-4o-mini", messages=ASK, response_format=Forecast
    )
    server.enqueue(Reply(tool_calls=[CALL]))
    called = await sdk.chat.completions.parse(
        model="gpt-4o-mini", messages=ASK, tools=[openai.pydantic_function_tool(GetWeather)]
    )
    await sdk.close()
    content_message = content.choices[0].message
    call_message = called.choices[0].message
    assert type(content_message).__name__.startswith("ParsedChatCompletionMessage")
    assert content_message.parsed == Forecast(city="Paris", celsius=21)
    assert call_message.tool_calls is not None
    assert call_message.tool_calls[0].function.parsed_arguments == GetWeather(city="Paris")
    async with client_for(server) as client:
        for form in forms(content_message, warnings=False):
            for sent in await sent_back(client, server, form):
                assert sent == {"role": "assistant", "content": ANSWER_JSON}
        for form in forms(call_message, warnings=False):
            for (model, tool_content), sent in zip(
                TARGETS, await sent_back(client, server, form), strict=True
            ):
                expected: dict[str, Any] = {"role": "assistant", "tool_calls": [CALL]}
                if tool_content is not None:
                    expected["content"] = tool_content
                assert sent == expected, model


async def test_parsed_fields_never_reach_the_wire_even_when_set_by_hand(
    server: FakeLLMServer,
) -> None:
    turn: Any = {
        "role": "assistant",
        "content": None,
        "parsed": {"city": "Paris"},
        "tool_calls": [
            {**CALL, "function": {**CALL["function"], "parsed_arguments": {"city": "Paris"}}}
        ],
    }
    async with client_for(server) as client:
        for sent in await sent_back(client, server, turn):
            assert "parsed" not in sent
            assert sent["tool_calls"] == [CALL]
