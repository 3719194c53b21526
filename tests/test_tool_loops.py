"""Multi-turn tool loops, streamed and not, on each remote provider kind (fake server wire).

OpenAI, DashScope's compatible mode and a generic OpenAI-compatible server each run the loop
that openai-python's docs show: the model calls tools (two at once), the caller runs them and
sends the results back as ``tool`` messages, the model answers. Local models run the same loop
in tests/local/test_tools.py; the real llama.cpp server in tests/test_real_llama_tools.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from genrouter import AsyncClient, Client
from genrouter.testing import FakeLLMServer, Reply

# Not about lifecycle: judge models as of before the 2026 retirements (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("catalog_before_2026_retirements")

KEYS = {"OPENAI_API_KEY": "sk-test-openai-0123456789", "DASHSCOPE_API_KEY": "sk-test-ds-98765"}
CAPABLE = {"json_schema": True, "json_object": True, "tools": True, "context_window": 8192}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
    },
]
CHOICES: list[Any] = [
    "auto",
    "required",
    "none",
    {"type": "function", "function": {"name": "get_weather"}},
]
# The model id each kind's route uses, and the name the fake server sees.
KINDS = {
    "openai": ("openai/gpt-4o-mini", "gpt-4o-mini"),
    "dashscope": ("dashscope/qwen-max", "qwen-max"),
    "compatible": ("compat/m1", "m1"),
}


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


def config(server: FakeLLMServer) -> dict[str, Any]:
    return {
        "providers": {
            "openai": {"type": "openai", "base_url": server.openai_base_url},
            "dashscope": {"type": "dashscope", "base_url": server.dashscope_base_url},
            "compat": {"type": "openai_compatible", "base_url": server.openai_base_url},
        },
        "models": {
            "openai/gpt-4o-mini": CAPABLE,
            "dashscope/qwen-max": {**CAPABLE, "json_schema": False},
            "compat/m1": CAPABLE,
        },
        "routes": {"default": {"candidates": ["openai/gpt-4o-mini"]}},
    }


def run_tool(name: str, arguments: str) -> str:
    args = json.loads(arguments)
    return f"sunny in {args['city']}" if name == "get_weather" else "12:00"


def script(server: FakeLLMServer, wire_model: str) -> None:
    server.enqueue(
        Reply.tool_calls_to(("get_weather", {"city": "Paris"}), ("get_time", {})),
        model=wire_model,
    )
    server.enqueue(Reply.text("Sunny in Paris at noon."), model=wire_model)


def check_second_request(server: FakeLLMServer, first_ids: list[str], kind: str) -> None:
    sent = server.requests[1].body["messages"]
    assistant, *results = sent[1:]
    assert assistant["role"] == "assistant"
    # OpenAI takes a tool-call turn without content (the key is left out); DashScope and
    # llama.cpp's server refuse one without the key (llama.cpp also a null): "" there.
    if kind == "openai":
        assert assistant.get("content") is None
    else:
        assert assistant["content"] == ""
    assert [c["id"] for c in assistant["tool_calls"]] == first_ids
    assert [c["function"]["name"] for c in assistant["tool_calls"]] == ["get_weather", "get_time"]
    assert results == [
        {"role": "tool", "tool_call_id": first_ids[0], "content": "sunny in Paris"},
        {"role": "tool", "tool_call_id": first_ids[1], "content": "12:00"},
    ]


# How the answer goes back into the history: the message object itself (openai-python's docs'
# `messages.append(response.choices[0].message)`), or either of its dumps.
FORMS = {
    "object": lambda message: message,
    "dump": lambda message: message.model_dump(),
    "json": lambda message: message.model_dump(mode="json"),
}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("form", list(FORMS))
async def test_tool_loop(server: FakeLLMServer, kind: str, stream: bool, form: str) -> None:
    model, wire_model = KINDS[kind]
    script(server, wire_model)
    messages: list[Any] = [{"role": "user", "content": "Weather and time in Paris?"}]
    async with AsyncClient(config(server), env=KEYS) as client:
        params: dict[str, Any] = {
            "tools": TOOLS,
            "tool_choice": "auto",
            "parallel_tool_calls": True,
        }
        if stream:
            chunks = await client.chat.completions.create(
                model=model, messages=messages, stream=True, **params
            )
            deltas = [
                d async for c in chunks for ch in c.choices for d in ch.delta.tool_calls or ()
            ]
            # OpenAI streams the id and name first, then the arguments in pieces.
            assert len(deltas) > 2 and {d.index for d in deltas} == {0, 1}
            first = chunks.get_final_completion()
        else:
            first = await client.chat.completions.create(model=model, messages=messages, **params)
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        calls = choice.message.tool_calls
        assert calls is not None and [c.function.name for c in calls] == ["get_weather", "get_time"]
        assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
        messages.append(FORMS[form](choice.message))
        for call in calls:
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call.id,
                    "content": run_tool(call.function.name, call.function.arguments),
                }
            )
        final = await client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
    assert final.choices[0].message.content == "Sunny in Paris at noon."
    sent = server.requests[0].body
    assert sent["tools"] == TOOLS and sent["tool_choice"] == "auto"
    assert sent["parallel_tool_calls"] is True
    assert server.requests[0].path.endswith(
        "/compatible-mode/v1/chat/completions" if kind == "dashscope" else "/v1/chat/completions"
    )
    check_second_request(server, ["call_0", "call_1"], kind)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("choice", CHOICES, ids=["auto", "required", "none", "named"])
async def test_every_tool_choice_form_reaches_the_wire(
    server: FakeLLMServer, kind: str, choice: Any
) -> None:
    model, wire_model = KINDS[kind]
    server.enqueue(Reply.tool_call("get_weather", {"city": "Oslo"}), model=wire_model)
    async with AsyncClient(config(server), env=KEYS) as client:
        resp = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Weather in Oslo?"}],
            tools=TOOLS,
            tool_choice=choice,
            parallel_tool_calls=False,
        )
    assert resp.route is not None and resp.route.dropped_params == []
    sent = server.requests[0].body
    assert sent["tool_choice"] == choice and sent["parallel_tool_calls"] is False


def test_sync_tool_loop(server: FakeLLMServer) -> None:
    script(server, "gpt-4o-mini")
    messages: list[Any] = [{"role": "user", "content": "Weather and time in Paris?"}]
    with Client(config(server), env=KEYS) as client:
        first = client.chat.completions.create(model="default", messages=messages, tools=TOOLS)
        message = first.choices[0].message
        assert message.tool_calls is not None
        messages.append(message.model_dump(exclude_none=True))
        messages += [
            {
                "role": "tool",
                "tool_call_id": c.id,
                "content": run_tool(c.function.name, c.function.arguments),
            }
            for c in message.tool_calls
        ]
        final = client.chat.completions.create(model="default", messages=messages, tools=TOOLS)
    assert final.choices[0].message.content == "Sunny in Paris at noon."
    check_second_request(server, ["call_0", "call_1"], "openai")


# -- tool_choice where the vendor takes fewer forms than OpenAI ------------------------------

ONE_TOOL = TOOLS[:1]
NAMED: Any = {"type": "function", "function": {"name": "get_weather"}}
ASK_OSLO: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]


@pytest.mark.parametrize("kind", list(KINDS))
async def test_required_with_one_tool_is_sent_as_that_tool_where_the_dialect_says(
    server: FakeLLMServer, kind: str
) -> None:
    model, wire_model = KINDS[kind]
    server.enqueue(Reply.tool_call("get_weather", {"city": "Oslo"}), model=wire_model)
    async with AsyncClient(config(server), env=KEYS) as client:
        resp = await client.chat.completions.create(
            model=model, messages=ASK_OSLO, tools=ONE_TOOL, tool_choice="required"
        )
    sent = server.requests[0].body["tool_choice"]
    assert resp.route is not None
    if kind == "openai":  # OpenAI honours "required" itself
        assert sent == "required" and resp.route.notes == []
    else:
        assert sent == NAMED
        assert any("sent as the named function 'get_weather'" in n for n in resp.route.notes)


async def test_dashscope_thinking_refuses_forced_choices_before_sending(
    server: FakeLLMServer,
) -> None:
    from genrouter.errors import AllCandidatesFailedError, UnsupportedInputError

    cfg = config(server)
    cfg["models"]["dashscope/qwen3-thinker"] = {**CAPABLE, "reasoning": True}
    async with AsyncClient(cfg, env=KEYS) as client:
        extra: Any
        choice: Any
        for model, extra in (
            ("dashscope/qwen3-thinker", {}),
            ("dashscope/qwen-max", {"extra_body": {"enable_thinking": True}}),
            ("dashscope/qwen-max", {"provider_options": {"dashscope": {"enable_thinking": True}}}),
        ):
            for choice in ("required", NAMED):
                with pytest.raises(AllCandidatesFailedError) as caught:
                    await client.chat.completions.create(
                        model=model, messages=ASK_OSLO, tools=TOOLS, tool_choice=choice, **extra
                    )
                assert caught.group_contains(UnsupportedInputError, match="thinking mode")
                assert caught.group_contains(UnsupportedInputError, match="enable_thinking")
        assert server.requests == []  # refused before any I/O
        # "auto" and "none" go, and so does a forced choice with thinking turned off.
        for choice, extra in (
            ("auto", {}),
            ("none", {}),
            (NAMED, {"provider_options": {"dashscope": {"enable_thinking": False}}}),
        ):
            server.enqueue(Reply.tool_call("get_weather", {"city": "Oslo"}), model="qwen3-thinker")
            await client.chat.completions.create(
                model="dashscope/qwen3-thinker",
                messages=ASK_OSLO,
                tools=TOOLS,
                tool_choice=choice,
                **extra,
            )
            assert server.requests[-1].body["tool_choice"] == choice


async def test_a_refused_thinking_candidate_hands_over_to_the_next(server: FakeLLMServer) -> None:
    cfg = config(server)
    cfg["models"]["dashscope/qwen3-thinker"] = {**CAPABLE, "reasoning": True}
    cfg["routes"] = {"tools": {"candidates": ["dashscope/qwen3-thinker", "openai/gpt-4o-mini"]}}
    server.enqueue(Reply.tool_call("get_weather", {"city": "Oslo"}), model="gpt-4o-mini")
    async with AsyncClient(cfg, env=KEYS) as client:
        resp = await client.chat.completions.create(
            model="tools", messages=ASK_OSLO, tools=TOOLS, tool_choice="required"
        )
    assert resp.route is not None and resp.route.model == "openai/gpt-4o-mini"
    assert resp.route.attempts[0].error_type == "UnsupportedInputError"
    assert [r.body["model"] for r in server.requests] == ["gpt-4o-mini"]


async def test_a_server_that_ignores_required_fails_over(server: FakeLLMServer) -> None:
    # llama.cpp's server answers text to "required" with several tools (see
    # tests/test_real_llama_tools.py); genrouter hands the request to the next candidate.
    from genrouter.errors import AllCandidatesFailedError, StructuredOutputError

    cfg = config(server)
    cfg["routes"] = {"tools": {"candidates": ["compat/m1", "openai/gpt-4o-mini"]}}
    server.enqueue(Reply.text("It is sunny."), model="m1")
    server.enqueue(Reply.tool_call("get_weather", {"city": "Oslo"}), model="gpt-4o-mini")
    async with AsyncClient(cfg, env=KEYS) as client:
        resp = await client.chat.completions.create(
            model="tools", messages=ASK_OSLO, tools=TOOLS, tool_choice="required"
        )
        assert resp.route is not None and resp.route.model == "openai/gpt-4o-mini"
        assert resp.route.attempts[0].error_type == "StructuredOutputError"
        assert resp.choices[0].message.tool_calls is not None
        # Alone on its route, the text answer is a typed error, not a silent success.
        server.enqueue(Reply.text("It is sunny."), model="m1")
        with pytest.raises(AllCandidatesFailedError) as caught:
            await client.chat.completions.create(
                model="compat/m1", messages=ASK_OSLO, tools=TOOLS, tool_choice="required"
            )
    assert caught.group_contains(StructuredOutputError, match="obliges a tool call")


async def test_a_stream_that_ignores_required_fails_over_before_any_text(
    server: FakeLLMServer,
) -> None:
    cfg = config(server)
    cfg["routes"] = {"tools": {"candidates": ["compat/m1", "openai/gpt-4o-mini"]}}
    server.enqueue(Reply.text("It is sunny in Oslo today."), model="m1")
    server.enqueue(Reply.tool_call("get_weather", {"city": "Oslo"}), model="gpt-4o-mini")
    async with AsyncClient(cfg, env=KEYS) as client:
        stream = await client.chat.completions.create(
            model="tools", messages=ASK_OSLO, tools=TOOLS, tool_choice="required", stream=True
        )
        texts = [c.choices[0].delta.content async for c in stream if c.choices]
        final = stream.get_final_completion()
    assert not any(texts)  # the ignoring server's text never reached the caller
    assert final.choices[0].message.tool_calls is not None
    assert stream.route.model == "openai/gpt-4o-mini"
    assert stream.route.attempts[0].error_type == "StructuredOutputError"
