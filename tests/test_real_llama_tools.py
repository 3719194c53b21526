"""Tools and JSON output against llama-cpp-python's real OpenAI server (Gemma 270M demo).

The session server runs ``--chat_format alpaca``. llama-cpp-python's generic chat handler
answers a forced ``tool_choice`` (a function name) by constraining the output with a grammar
built from that function's parameter schema and returning it as a tool call (read in
``llama_cpp/llama_chat_format.py``, 0.3.36, ``chat_formatter_to_chat_completion_handler``);
``json_object`` gets a JSON grammar, and llama-cpp-python's ``schema`` extension to it a
grammar from a schema. The schemas here use enums so that a 270M model's answer is short.

String ``tool_choice`` values are another matter (measured 2026-12-02, same server and model):
with ``alpaca`` the server ignores ``"auto"``, ``"required"`` and ``"none"`` alike and never
shows the tools to the model, so the answer is text. genrouter therefore sends ``"required"``
with one tool as that tool's named choice (a real call comes back), and turns a text answer
to ``"required"`` with several tools into a typed error (the route's next candidate would get
it). ``"none"`` is honoured by construction; ``"auto"`` answers text here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from openai.types.chat import ChatCompletionNamedToolChoiceParam, ChatCompletionToolParam

from genrouter import AsyncClient
from genrouter.errors import AllCandidatesFailedError, StructuredOutputError
from tests.real_servers import LlamaServer, start_llama_server

pytestmark = pytest.mark.slow

CITIES = ["Paris", "Tokyo", "Lima"]
WEATHER: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": CITIES}},
            "required": ["city"],
        },
    },
}
TIME: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Local time in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": CITIES}},
            "required": ["city"],
        },
    },
}
FORCED: ChatCompletionNamedToolChoiceParam = {
    "type": "function",
    "function": {"name": "get_weather"},
}


def real_client(server: LlamaServer, http: httpx2.AsyncClient | None = None) -> AsyncClient:
    """A client for the real server's one model, its capabilities declared."""
    return AsyncClient(
        {
            "providers": {"llama": {"type": "openai_compatible", "base_url": server.base_url}},
            "models": {
                "llama/gemma": {
                    "context_window": 512,
                    "max_output_tokens": 64,
                    "tools": True,
                    "json_object": True,
                    "json_schema": False,  # the server answers json_schema with a 500
                    "streaming_usage": False,
                }
            },
            "routes": {"default": {"candidates": ["llama/gemma"]}},
        },
        env={},
        http_client=http,
    )


async def test_tool_loop_on_the_real_server(llama_server: LlamaServer) -> None:
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    async with real_client(llama_server) as client:
        first = await client.chat.completions.create(
            model="llama/gemma",
            messages=messages,
            tools=[WEATHER],
            tool_choice=FORCED,
            max_tokens=32,
            temperature=0,
        )
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        calls = choice.message.tool_calls
        assert calls is not None and [c.function.name for c in calls] == ["get_weather"]
        city = json.loads(calls[0].function.arguments)["city"]
        assert city in CITIES
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [c.model_dump(include={"id", "type", "function"}) for c in calls],
            }
        )
        messages.append({"role": "tool", "tool_call_id": calls[0].id, "content": "sunny, 21C"})
        final = await client.chat.completions.create(
            model="llama/gemma", messages=messages, tools=[WEATHER], max_tokens=16, temperature=0
        )
    assert final.choices[0].message.tool_calls is None
    assert final.choices[0].finish_reason in ("stop", "length")
    assert final.usage is not None and final.usage.prompt_tokens > 0


async def test_streamed_forced_tool_call_on_the_real_server(llama_server: LlamaServer) -> None:
    async with real_client(llama_server) as client:
        stream = await client.chat.completions.create(
            model="llama/gemma",
            messages=[{"role": "user", "content": "Weather in Tokyo?"}],
            tools=[WEATHER],
            tool_choice=FORCED,
            max_tokens=32,
            temperature=0,
            stream=True,
        )
        pieces = [d async for c in stream for ch in c.choices for d in ch.delta.tool_calls or ()]
        final = stream.get_final_completion()
    assert pieces and all(p.index == 0 for p in pieces)
    calls = final.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments)["city"] in CITIES


async def test_json_object_on_the_real_server(llama_server: LlamaServer) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
        "required": ["answer"],
    }
    async with real_client(llama_server) as client:
        resp = await client.chat.completions.create(
            model="llama/gemma",
            messages=[{"role": "user", "content": "Is Paris in France? Answer in JSON."}],
            response_format={"type": "json_object", "schema": schema},
            max_tokens=32,
            temperature=0,
        )
    content = resp.choices[0].message.content
    assert content is not None
    assert json.loads(content)["answer"] in ("yes", "no")


async def test_openai_sdk_idioms_on_an_undeclared_model_of_the_real_server(
    llama_server: LlamaServer,
) -> None:
    # The model is declared with no capabilities at all: unset means "try it", so tools and
    # JSON mode reach the server, and the tool loop continues the way openai-python's docs do
    # (the answer's own message object appended to the history, as it came back).
    config = {
        "providers": {"llama": {"type": "openai_compatible", "base_url": llama_server.base_url}},
        "models": {"llama/plain": {"context_window": 512, "max_output_tokens": 64}},
    }
    recorder = Recorder()
    async with AsyncClient(config, env={}, http_client=recorder.http) as client:
        messages: list[Any] = [{"role": "user", "content": "What is the weather in Lima?"}]
        first = await client.chat.completions.create(
            model="llama/plain",
            messages=messages,
            tools=[WEATHER],
            tool_choice=FORCED,
            max_tokens=32,
            temperature=0,
        )
        message = first.choices[0].message
        assert message.tool_calls is not None
        messages.append(message)
        for call in message.tool_calls:
            messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"})
        final = await client.chat.completions.create(
            model="llama/plain", messages=messages, tools=[WEATHER], max_tokens=16, temperature=0
        )
        plain_json = await client.chat.completions.create(
            model="llama/plain",
            messages=[{"role": "user", "content": 'Is Paris in France? Answer {"answer": "yes"}.'}],
            response_format={"type": "json_object"},
            max_tokens=24,
            temperature=0,
        )
    await recorder.http.aclose()
    assert final.choices[0].message.tool_calls is None
    assert final.choices[0].finish_reason in ("stop", "length")
    # The history genrouter sent back: the assistant's tool call as the server returned it.
    turn = recorder.bodies[1]["messages"][1]
    assert turn["role"] == "assistant" and turn["tool_calls"][0]["id"] == message.tool_calls[0].id
    assert recorder.bodies[2]["response_format"] == {"type": "json_object"}
    # Plain JSON mode (no schema) is a JSON grammar on this server: the answer opens an object
    # and keeps to JSON. This 270M model then rambles on inside it (measured 2026-12-03: it
    # repeats keys past 256 tokens), so the answer is cut by max_tokens, not ended.
    content = plain_json.choices[0].message.content or ""
    assert content.lstrip().startswith('{"') or content.lstrip().startswith("{\n"), content
    assert plain_json.choices[0].finish_reason in ("stop", "length")


class Recorder:
    """An HTTP client that keeps the JSON bodies genrouter sends."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.http = httpx2.AsyncClient(event_hooks={"request": [self._keep]})

    async def _keep(self, request: httpx2.Request) -> None:
        self.bodies.append(json.loads(request.content))


ASK: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]


async def _answer(client: AsyncClient, stream: bool, **params: Any) -> Any:
    """The whole answer, streamed or not (``max_tokens`` kept small: the model is slow here)."""
    params = {"model": "llama/gemma", "messages": ASK, "max_tokens": 12, "temperature": 0, **params}
    if not stream:
        return await client.chat.completions.create(**params)
    chunks = await client.chat.completions.create(stream=True, **params)
    async for _chunk in chunks:
        pass
    return chunks.get_final_completion()


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_none_and_auto_answer_text_on_the_real_server(
    llama_server: LlamaServer, stream: bool
) -> None:
    recorder = Recorder()
    async with real_client(llama_server, recorder.http) as client:
        for choice in ("none", "auto"):
            resp = await _answer(client, stream, tools=[WEATHER, TIME], tool_choice=choice)
            message = resp.choices[0].message
            # "none": honoured. "auto": the alpaca format never shows the tools, so text.
            assert message.tool_calls is None
            assert resp.choices[0].finish_reason in ("stop", "length")
    await recorder.http.aclose()
    assert [b["tool_choice"] for b in recorder.bodies] == ["none", "auto"]


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_required_with_one_tool_is_a_real_call_on_the_real_server(
    llama_server: LlamaServer, stream: bool
) -> None:
    recorder = Recorder()
    async with real_client(llama_server, recorder.http) as client:
        resp = await _answer(client, stream, tools=[WEATHER], tool_choice="required", max_tokens=32)
    await recorder.http.aclose()
    assert recorder.bodies[0]["tool_choice"] == FORCED  # sent as the one tool's named choice
    calls = resp.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments)["city"] in CITIES
    notes = resp.route.notes
    assert any("sent as the named function 'get_weather'" in note for note in notes)


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_required_with_several_tools_is_a_typed_error_on_the_real_server(
    llama_server: LlamaServer, stream: bool
) -> None:
    async with real_client(llama_server) as client:
        with pytest.raises(AllCandidatesFailedError) as caught:
            await _answer(client, stream, tools=[WEATHER, TIME], tool_choice="required")
    assert caught.group_contains(StructuredOutputError, match="obliges a tool call")


@pytest.fixture(scope="module")
def function_calling_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """The same model behind ``--chat_format chatml-function-calling``."""
    server = start_llama_server(
        tmp_path_factory.mktemp("llama-fc"), chat_format="chatml-function-calling"
    )
    try:
        yield server
    finally:
        server.stop()


async def test_chatml_function_calling_server_fails_required_typed(
    function_calling_server: LlamaServer,
) -> None:
    # This format fails "required" itself: HTTP 500 (an assertion in llama-cpp-python), or a
    # streamed 200 with an empty body. Both are typed errors; with one tool the named choice
    # genrouter sends instead works.
    from genrouter.errors import ResponseFormatError, ServerError

    async with real_client(function_calling_server) as client:
        one = await _answer(client, False, tools=[WEATHER], tool_choice="required", max_tokens=32)
        with pytest.raises(AllCandidatesFailedError) as complete:
            await _answer(client, False, tools=[WEATHER, TIME], tool_choice="required")
        # Last: once, in a full-suite run, the server reset the next connection after this.
        with pytest.raises(AllCandidatesFailedError) as streamed:
            await _answer(client, True, tools=[WEATHER, TIME], tool_choice="required")
    assert complete.group_contains(ServerError)
    assert streamed.group_contains(ResponseFormatError, match="empty")
    calls = one.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "get_weather"
