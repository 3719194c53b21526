"""``chat.completions.stream(...)``: openai-python's streamed parse, over the fake server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from genrouter import AsyncClient, Client, MessageParam, StructuredOutputError
from genrouter.structured import response_format_param
from genrouter.testing import FakeLLMServer, Reply

# Not about lifecycle: judge models as of before the 2026 retirements (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("catalog_before_2026_retirements")

KEYS = {"OPENAI_API_KEY": "sk-test-openai-0123456789"}
ASK: list[MessageParam] = [{"role": "user", "content": "Weather in Rome?"}]
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


def config(server: FakeLLMServer) -> dict[str, Any]:
    return {
        "providers": {"openai": {"type": "openai", "base_url": server.openai_base_url}},
        "models": {"openai/gpt-4o-mini": CAPABLE},
        "routes": {"default": {"candidates": ["openai/gpt-4o-mini"]}},
    }


async def test_async_stream_events_and_final_parse(server: FakeLLMServer) -> None:
    server.enqueue(Reply(chunks=['{"city": ', '"Rome", ', '"temp_c": 30}']))
    async with (
        AsyncClient(config(server), env=KEYS) as client,
        client.chat.completions.stream(messages=ASK, response_format=Weather) as stream,
    ):
        events = [event async for event in stream]
        final = await stream.get_final_completion()
    deltas = [e for e in events if e.type == "content.delta"]
    assert [e.delta for e in deltas] == ['{"city": ', '"Rome", ', '"temp_c": 30}']
    assert deltas[1].parsed == {"city": "Rome"}  # the JSON so far, parsed leniently
    done = [e for e in events if e.type == "content.done"]
    assert len(done) == 1 and done[0].parsed == Weather(city="Rome", temp_c=30)
    assert final.choices[0].message.parsed == Weather(city="Rome", temp_c=30)
    assert final.route is not None and final.route.model == "openai/gpt-4o-mini"
    sent = server.requests[0].body
    assert sent["stream"] is True and sent["response_format"] == response_format_param(Weather)


async def test_stream_refusal_and_invalid_answer(server: FakeLLMServer) -> None:
    server.enqueue(Reply(refusal="No."))
    server.enqueue(Reply(chunks=['{"city": ', '"Rome"}']))
    async with AsyncClient(config(server), env=KEYS) as client:
        async with client.chat.completions.stream(messages=ASK, response_format=Weather) as s:
            events = [e.type async for e in s]
            final = await s.get_final_completion()
        assert "refusal.done" in events and final.choices[0].message.parsed is None
        assert final.choices[0].message.refusal == "No."
        async with client.chat.completions.stream(messages=ASK, response_format=Weather) as s:
            with pytest.raises(StructuredOutputError, match="temp_c"):
                async for _event in s:
                    pass


def test_sync_stream_with_a_pydantic_tool(server: FakeLLMServer) -> None:
    server.enqueue(Reply.tool_call("GetWeather", {"city": "Rome"}))
    tools = [openai.pydantic_function_tool(GetWeather)]
    with (
        Client(config(server), env=KEYS) as client,
        client.chat.completions.stream(messages=ASK, tools=tools) as stream,
    ):
        events = list(stream)
        final = stream.get_final_completion()
    pieces = [e for e in events if e.type == "tool_calls.function.arguments.delta"]
    assert len(pieces) > 1 and pieces[-1].arguments == '{"city": "Rome"}'
    done = [e for e in events if e.type == "tool_calls.function.arguments.done"]
    assert [(e.name, e.index) for e in done] == [("GetWeather", 0)]
    calls = final.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.parsed_arguments == GetWeather(city="Rome")


def test_sync_stream_events_and_final_parse(server: FakeLLMServer) -> None:
    server.enqueue(Reply(chunks=['{"city": ', '"Rome", ', '"temp_c": 30}']))
    with (
        Client(config(server), env=KEYS) as client,
        client.chat.completions.stream(messages=ASK, response_format=Weather) as stream,
    ):
        events = list(stream)
        final = stream.get_final_completion()
        route = stream.route
    deltas = [e for e in events if e.type == "content.delta"]
    assert [e.delta for e in deltas] == ['{"city": ', '"Rome", ', '"temp_c": 30}']
    assert deltas[1].parsed == {"city": "Rome"}
    done = [e for e in events if e.type == "content.done"]
    assert len(done) == 1 and done[0].parsed == Weather(city="Rome", temp_c=30)
    assert final.choices[0].message.parsed == Weather(city="Rome", temp_c=30)
    assert final.route is route and route.model == "openai/gpt-4o-mini"
    sent = server.requests[0].body
    assert sent["stream"] is True and sent["response_format"] == response_format_param(Weather)


def test_sync_stream_refusal_invalid_answer_and_early_close(server: FakeLLMServer) -> None:
    server.enqueue(Reply(refusal="No."))
    server.enqueue(Reply(chunks=['{"city": ', '"Rome"}']))
    words = [f"w{i} " for i in range(40)]
    server.enqueue(Reply(chunks=words, delay_between_chunks_s=0.1))  # 4 s in all
    with Client(config(server), env=KEYS) as client:
        with client.chat.completions.stream(messages=ASK, response_format=Weather) as s:
            kinds = [e.type for e in s]
            final = s.get_final_completion()
        assert "refusal.done" in kinds and final.choices[0].message.parsed is None
        assert final.choices[0].message.refusal == "No."
        with (
            client.chat.completions.stream(messages=ASK, response_format=Weather) as s,
            pytest.raises(StructuredOutputError, match="temp_c"),
        ):
            for _event in s:
                pass
        with client.chat.completions.stream(messages=ASK) as s:
            first = next(e for e in s if e.type == "content.delta")
        assert first.delta == "w0 "
        # Left early: the stream is closed and its connection dropped, long before the 4 s.
        deadline = time.monotonic() + 2
        while server.connections_open and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.connections_open == 0
        server.enqueue(Reply.text("again"))
        answer = client.chat.completions.create(messages=ASK, model="default")
        assert answer.choices[0].message.content == "again"


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_a_stream_manager_entered_twice_parses_each_answer_on_its_own(
    server: FakeLLMServer, sync: bool
) -> None:
    server.enqueue(Reply(chunks=['{"city": "Rome", ', '"temp_c": 30}']))
    server.enqueue(Reply(chunks=['{"city": "Oslo", ', '"temp_c": -2}']))
    finals: list[Any] = []
    if sync:
        with Client(config(server), env=KEYS) as client:
            manager = client.chat.completions.stream(messages=ASK, response_format=Weather)
            for _ in range(2):
                with manager as stream:
                    finals.append(stream.get_final_completion())
    else:

        async def twice() -> None:
            async with AsyncClient(config(server), env=KEYS) as client:
                manager = client.chat.completions.stream(messages=ASK, response_format=Weather)
                for _ in range(2):
                    async with manager as stream:
                        finals.append(await stream.get_final_completion())

        asyncio.run(twice())
    parsed = [final.choices[0].message.parsed for final in finals]
    assert parsed == [Weather(city="Rome", temp_c=30), Weather(city="Oslo", temp_c=-2)]
    assert len(server.requests) == 2


def test_a_sync_stream_costs_one_portal_call_to_open_and_none_per_event(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genrouter.sync import _Portal

    pieces = [f"p{i} " for i in range(30)]
    server.enqueue(Reply(chunks=pieces))
    calls: list[str] = []
    real_call = _Portal.call

    def counting(self: _Portal, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return real_call(self, fn, *args, **kwargs)

    with Client(config(server), env=KEYS) as client:
        monkeypatch.setattr(_Portal, "call", counting)
        with client.chat.completions.stream(messages=ASK) as stream:
            text = "".join(e.delta for e in stream if e.type == "content.delta")
            final = stream.get_final_completion()
        monkeypatch.undo()
    assert text == "".join(pieces) == final.choices[0].message.content
    assert calls == ["_open_stream"]  # and nothing per event, nor to finish or close
