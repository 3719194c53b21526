"""openai-python's documented idioms, with genrouter's client swapped in (fake servers).

Each test is code as the openai SDK's README and helpers write it: stream loops that index
``chunk.choices[0]``, ``stream_options={"include_usage": True}``, conversations continued with
``messages.append(resp.choices[0].message)``, every ``create()`` parameter, ``close()``.
"""

from __future__ import annotations

import _thread
import inspect
import threading
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest
from openai.resources.chat.completions import AsyncCompletions as OpenAIAsyncCompletions
from openai.types.chat import ChatCompletionAssistantMessageParam
from openai.types.chat import ChatCompletionMessage as OpenAIMessage

from genrouter import AsyncClient, Client
from genrouter.errors import ConfigError, UnsupportedInputError
from genrouter.params import CompletionCreateParams, MessageParam
from genrouter.request import ChatRequest
from genrouter.testing import FakeLLMServer, Reply

# Not about lifecycle: judge models as of before the 2026 retirements (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("catalog_before_2026_retirements")

KEY = {"OPENAI_API_KEY": "sk-test", "DASHSCOPE_API_KEY": "sk-test"}
HELLO: list[MessageParam] = [{"role": "user", "content": "Say hello"}]
MODEL = "openai/gpt-4o-mini"
WEATHER_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def config(server: FakeLLMServer, **models: Any) -> dict[str, Any]:
    return {
        "providers": {
            "openai": {"type": "openai", "base_url": server.openai_base_url},
            "dashscope": {"type": "dashscope", "base_url": server.dashscope_base_url},
            "vllm": {"type": "openai_compatible", "base_url": server.openai_base_url},
        },
        "models": models,
    }


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


# -- 1. streams as the SDK yields them ----------------------------------------------------------


async def test_stream_loop_from_the_readme_without_include_usage(server: FakeLLMServer) -> None:
    async with AsyncClient(config(server), env=KEY) as client:
        stream = await client.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
        async with stream:
            chunks = [chunk async for chunk in stream]
            text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
        final = stream.get_final_completion()
    assert text == "echo: Say hello"
    assert all(chunk.choices and chunk.usage is None for chunk in chunks)
    # genrouter still asked for usage, and has it.
    assert server.requests[-1].body["stream_options"] == {"include_usage": True}
    assert final.usage is not None and final.usage.completion_tokens > 0
    assert stream.route.usage == final.usage


async def test_include_usage_gives_one_usage_only_chunk_at_the_end(server: FakeLLMServer) -> None:
    async with AsyncClient(config(server), env=KEY) as client:
        stream = await client.chat.completions.create(
            model=MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens > 0
    assert [c for c in chunks if not c.choices] == chunks[-1:]
    assert all(c.usage is None for c in chunks[:-1])


def test_sync_stream_loop_and_include_usage(server: FakeLLMServer) -> None:
    with Client(config(server), env=KEY) as client:
        with client.chat.completions.create(model=MODEL, messages=HELLO, stream=True) as stream:
            text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
        usage_chunks = [
            chunk
            for chunk in client.chat.completions.create(
                model=MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}
            )
            if chunk.usage is not None
        ]
    assert text == "echo: Say hello"
    assert len(usage_chunks) == 1 and usage_chunks[0].choices == []


def test_sync_stream_closes_cleanly_when_the_loop_raises(server: FakeLLMServer) -> None:
    server.enqueue(Reply.text("one two three four five", delay_between_chunks_s=0.05))
    with Client(config(server), env=KEY) as client:
        with (
            pytest.raises(ValueError, match="caller"),
            client.chat.completions.create(model=MODEL, messages=HELLO, stream=True) as stream,
        ):
            for index, _chunk in enumerate(stream):
                if index == 2:
                    raise ValueError("caller")
        # The client still works afterwards.
        again = client.chat.completions.create(model=MODEL, messages=HELLO)
    assert again.choices[0].message.content == "echo: Say hello"


def test_sync_stream_interrupted_mid_chunk_raises_only_the_interrupt(
    server: FakeLLMServer,
) -> None:
    # Ctrl-C while the portal waits for a chunk: the call is cancelled and waited for, so the
    # stream's close no longer meets a generator "already running".
    server.enqueue(Reply.text("one two three four five six", delay_between_chunks_s=0.4))
    with Client(config(server), env=KEY) as client:
        stream = client.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
        timer = threading.Timer(0.6, _thread.interrupt_main)
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt) as caught, stream:
                for _chunk in stream:
                    pass
        finally:
            timer.cancel()
        assert caught.value.__context__ is None or not isinstance(
            caught.value.__context__, RuntimeError
        )
        again = client.chat.completions.create(model=MODEL, messages=HELLO)
    assert again.choices[0].message.content


async def test_async_stream_closes_cleanly_when_the_loop_raises(server: FakeLLMServer) -> None:
    server.enqueue(Reply.text("one two three four five", delay_between_chunks_s=0.05))
    async with AsyncClient(config(server), env=KEY) as client:
        stream = await client.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
        with pytest.raises(ValueError, match="caller"):
            async with stream:
                async for chunk in stream:
                    if chunk.choices[0].delta.content:
                        raise ValueError("caller")
        assert stream.route.attempts[-1].outcome == "cancelled"
        again = await client.chat.completions.create(model=MODEL, messages=HELLO)
    assert again.choices[0].message.content == "echo: Say hello"


# -- 2. history round trips ---------------------------------------------------------------------


def _assistant_forms(response_message: Any) -> list[Any]:
    """An earlier answer in every form callers hand it back."""
    sdk_message = OpenAIMessage.model_validate(
        {"role": "assistant", "content": "Hi!", "refusal": None, "annotations": []}
    )
    param: ChatCompletionAssistantMessageParam = {"role": "assistant", "content": "Hi!"}
    returned_fields = {
        "role": "assistant",
        "content": "Hi!",
        "refusal": None,
        "audio": None,
        "annotations": None,
        "function_call": None,
        "tool_calls": None,
    }
    return [
        response_message,
        response_message.model_dump(),
        response_message.model_dump(mode="json"),
        response_message.model_dump(exclude_none=True),
        sdk_message,
        sdk_message.model_dump(),
        sdk_message.model_dump(mode="json"),
        param,
        returned_fields,
    ]


async def test_conversation_continues_with_the_answer_in_every_form(
    server: FakeLLMServer,
) -> None:
    async with AsyncClient(config(server), env=KEY) as client:
        first = await client.chat.completions.create(model=MODEL, messages=HELLO)
        for form in _assistant_forms(first.choices[0].message):
            messages: list[Any] = [*HELLO, form, {"role": "user", "content": "And again"}]
            await client.chat.completions.create(model=MODEL, messages=messages)
            sent = server.requests[-1].body["messages"][1]
            assert sent["role"] == "assistant" and sent["content"] in ("echo: Say hello", "Hi!")
            # OpenAI takes none of these back as None, nor genrouter's reasoning field.
            assert not {"annotations", "reasoning_content", "partial"} & set(sent)
            assert all(value is not None for value in sent.values())


async def test_tool_call_history_round_trips_streamed_and_not(server: FakeLLMServer) -> None:
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    async with AsyncClient(config(server), env=KEY) as client:
        server.enqueue(Reply(tool_calls=[WEATHER_CALL]))
        resp = await client.chat.completions.create(model=MODEL, messages=HELLO, tools=tools)
        server.enqueue(Reply(tool_calls=[WEATHER_CALL]))
        stream = await client.chat.completions.create(
            model=MODEL, messages=HELLO, tools=tools, stream=True
        )
        streamed = await stream.until_done()
        indexed = {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [{"index": 0, **WEATHER_CALL}],
        }
        for turn in (resp.choices[0].message, streamed.choices[0].message, indexed):
            messages: list[Any] = [
                *HELLO,
                turn,
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ]
            await client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
            sent = server.requests[-1].body["messages"][1]
            assert sent["tool_calls"] == [WEATHER_CALL]  # no index, no None fields
            assert "content" not in sent or sent["content"] is None


async def test_dashscope_tool_turn_has_content_and_thinking_keeps_reasoning(
    server: FakeLLMServer,
) -> None:
    thinking = {"dashscope/qwen3-thinker": {"reasoning": True, "tools": True}}
    turn: MessageParam = {
        "role": "assistant",
        "content": None,
        "reasoning_content": "The user wants weather.",
        "tool_calls": [{"id": "call_1", "type": "function", "function": WEATHER_CALL["function"]}],  # type: ignore[typeddict-item]
    }
    messages: list[MessageParam] = [
        *HELLO,
        turn,
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    async with AsyncClient(config(server, **thinking), env=KEY) as client:
        for model in ("dashscope/qwen-max", "dashscope/qwen3-thinker"):
            resp = await client.chat.completions.create(model=model, messages=messages)
            assert resp.choices[0].message.content
            sent = server.requests[-1].body["messages"][1]
            assert sent["content"] == ""  # the fake refuses a missing key, as DashScope does
            has_reasoning = "reasoning_content" in sent
            assert has_reasoning is (model == "dashscope/qwen3-thinker")


def test_fake_dashscope_refuses_a_tool_turn_without_content(server: FakeLLMServer) -> None:
    body = {
        "model": "qwen-max",
        "messages": [{"role": "assistant", "tool_calls": [WEATHER_CALL]}],
    }
    response = httpx2.post(server.dashscope_base_url + "/chat/completions", json=body)
    assert response.status_code == 400
    assert "input.messages.0.content" in response.json()["error"]["message"]


# -- 3. every parameter of openai's create() ---------------------------------------------------


def test_every_openai_create_parameter_is_ours() -> None:
    theirs = set(inspect.signature(OpenAIAsyncCompletions.create).parameters) - {"self"}
    explicit = set(inspect.signature(AsyncClient(env={}).chat.completions.create).parameters)
    typed = explicit | set(CompletionCreateParams.__annotations__)
    accepted = set(ChatRequest.model_fields)
    assert theirs - typed == set(), "add these to genrouter.params.CompletionCreateParams"
    assert theirs - accepted == set(), "add these to genrouter.request.ChatRequest"


ALL_PARAMS: dict[str, Any] = {
    "audio": {"voice": "alloy", "format": "wav"},
    "frequency_penalty": 0.1,
    "function_call": "auto",
    "functions": [{"name": "f", "parameters": {}}],
    "logit_bias": {"1": 1},
    "logprobs": True,
    "max_completion_tokens": 20,
    "metadata": {"team": "a"},
    "modalities": ["text"],
    "moderation": {"policy": {}},
    "n": 1,
    "parallel_tool_calls": True,
    "prediction": {"type": "content", "content": "x"},
    "presence_penalty": 0.1,
    "prompt_cache_key": "k",
    "prompt_cache_options": {},
    "prompt_cache_retention": "24h",
    "reasoning_effort": "low",
    "response_format": {"type": "text"},
    "safety_identifier": "u-1",
    "seed": 1,
    "service_tier": "auto",
    "stop": ["\n\n"],
    "store": True,
    "temperature": 0.5,
    "tool_choice": "auto",
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    "top_logprobs": 2,
    "top_p": 0.9,
    "user": "u",
    "verbosity": "low",
    "web_search_options": {},
}


def test_the_parameter_list_covers_the_sdk() -> None:
    names = set(inspect.signature(OpenAIAsyncCompletions.create).parameters)
    skipped = {"self", "messages", "model", "stream", "stream_options", "max_tokens"}
    skipped |= {"extra_headers", "extra_query", "extra_body", "timeout"}
    assert names - skipped == set(ALL_PARAMS)


async def test_every_parameter_reaches_openai_and_extra_ones_the_wire(
    server: FakeLLMServer,
) -> None:
    seen: list[httpx2.Request] = []

    async def record(request: httpx2.Request) -> None:
        seen.append(request)

    http = httpx2.AsyncClient(event_hooks={"request": [record]})
    async with AsyncClient(config(server), env=KEY, http_client=http) as client:
        resp = await client.chat.completions.create(
            model=MODEL,
            messages=HELLO,
            extra_headers={"X-Trace": "t-1"},
            extra_query={"api-version": "2026-01-01"},
            extra_body={"custom": 1},
            timeout=httpx2.Timeout(30.0),
            route_metadata={"tier": "free"},
            **ALL_PARAMS,
        )
    await http.aclose()
    body = server.requests[-1].body
    assert {k: body[k] for k in ALL_PARAMS if k != "max_completion_tokens"} == {
        k: v for k, v in ALL_PARAMS.items() if k != "max_completion_tokens"
    }
    assert body["max_tokens"] == 20  # gpt-4o-mini's field for the output limit
    assert body["custom"] == 1 and "route_metadata" not in body
    assert server.requests[-1].headers["x-trace"] == "t-1"
    assert seen[-1].url.params["api-version"] == "2026-01-01"
    assert resp.route is not None and resp.route.dropped_params == []


async def test_platform_parameters_are_dropped_and_recorded_elsewhere(
    server: FakeLLMServer,
) -> None:
    async with AsyncClient(config(server), env=KEY) as client:
        resp = await client.chat.completions.create(
            model="vllm/llama",
            messages=HELLO,
            store=True,
            metadata={"team": "a"},
            service_tier="flex",
            temperature=0.3,
            extra_headers={"X-Trace": "t-2"},
        )
    body = server.requests[-1].body
    assert resp.route is not None
    assert set(resp.route.dropped_params) == {"store", "metadata", "service_tier"}
    assert body["temperature"] == 0.3 and "store" not in body
    assert server.requests[-1].headers["x-trace"] == "t-2"


async def test_not_given_sentinels_mean_unset(server: FakeLLMServer) -> None:
    async with AsyncClient(config(server), env=KEY) as client:
        # Wrappers written for the SDK forward its "not given" sentinels.
        forwarded: dict[str, Any] = {"temperature": openai.NOT_GIVEN, "seed": openai.omit}
        await client.chat.completions.create(model=MODEL, messages=HELLO, **forwarded)
    assert "temperature" not in server.requests[-1].body
    assert "seed" not in server.requests[-1].body


# -- 6. declared models: unset capabilities are tried --------------------------------------


async def test_declared_compatible_model_tries_unset_capabilities(server: FakeLLMServer) -> None:
    tools: Any = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    models = {"vllm/declared": {"context_window": 4096}, "vllm/no-tools": {"tools": False}}
    async with AsyncClient(config(server, **models), env=KEY) as client:
        resp = await client.chat.completions.create(
            model="vllm/declared",
            messages=HELLO,
            tools=tools,
            response_format={"type": "json_object"},
        )
        assert resp.choices[0].message.content
        with pytest.raises(UnsupportedInputError, match=r'tools = true under \[models."vllm'):
            await client.chat.completions.create(model="vllm/no-tools", messages=HELLO, tools=tools)


@pytest.mark.parametrize(
    ("declared", "ask", "key"),
    [
        ({"tools": False}, "tools", "tools"),
        ({"json_object": False}, "json_object", "json_object"),
        # JSON-schema support does not vouch for a JSON mode declared missing.
        ({"json_object": False, "json_schema": True}, "json_object", "json_object"),
        ({"json_schema": False}, "json_schema", "json_schema"),
    ],
)
async def test_an_explicit_false_filters_and_names_its_key(
    server: FakeLLMServer, declared: dict[str, bool], ask: str, key: str
) -> None:
    asks: dict[str, Any] = {
        "tools": {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        "json_object": {"response_format": {"type": "json_object"}},
        "json_schema": {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "n", "schema": {"type": "object"}},
            }
        },
    }
    async with AsyncClient(config(server, **{"vllm/m": declared}), env=KEY) as client:
        decision = client.route(model="vllm/m", messages=HELLO, **asks[ask])
        (candidate,) = decision.candidates
        assert f'set {key} = true under [models."vllm/m"]' in (candidate.excluded_because or "")
        with pytest.raises(UnsupportedInputError, match=rf"{key} = true"):
            await client.chat.completions.create(model="vllm/m", messages=HELLO, **asks[ask])
    assert server.requests == []  # refused before anything was sent


async def test_an_unset_capability_the_server_rejects_fails_over(server: FakeLLMServer) -> None:
    # Unset means "try it": the server's 400 then fails over like any other rejection.
    cfg = config(server, **{"vllm/m": {}})
    cfg["routes"] = {"json": {"candidates": ["vllm/m", MODEL]}}
    server.enqueue(Reply.error(400, message="response_format is not supported"), model="m")
    server.enqueue(Reply.text('{"ok": true}'), model="gpt-4o-mini")
    async with AsyncClient(cfg, env=KEY) as client:
        resp = await client.chat.completions.create(
            model="json", messages=HELLO, response_format={"type": "json_object"}
        )
    assert resp.choices[0].message.content == '{"ok": true}'
    assert resp.route is not None and resp.route.model == MODEL
    assert resp.route.attempts[0].error_type == "BadRequestError"
    assert [r.body["model"] for r in server.requests] == ["m", "gpt-4o-mini"]
    assert server.requests[0].body["response_format"] == {"type": "json_object"}


# -- 7. close() as the SDK spells it ----------------------------------------------------------


async def test_async_close_as_the_sdk_spells_it(server: FakeLLMServer) -> None:
    client = AsyncClient(config(server), env=KEY)
    await client.chat.completions.create(model=MODEL, messages=HELLO)
    await client.close()
    await client.close()  # twice is fine
    with pytest.raises(ConfigError, match="closed"):
        client.provider("openai")


def test_sync_close(server: FakeLLMServer) -> None:
    client = Client(config(server), env=KEY)
    client.chat.completions.create(model=MODEL, messages=HELLO)
    client.close()
    client.close()
    with pytest.raises(Exception, match="closed"):
        client.chat.completions.create(model=MODEL, messages=HELLO)


async def test_compatible_servers_get_content_on_tool_turns(server: FakeLLMServer) -> None:
    turn: Any = {"role": "assistant", "content": None, "tool_calls": [WEATHER_CALL]}
    result: Any = {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    async with AsyncClient(config(server), env=KEY) as client:
        resp = await client.chat.completions.create(
            model="vllm/llama", messages=[*HELLO, turn, result]
        )
    sent = server.requests[-1].body["messages"][1]
    assert sent == {"role": "assistant", "content": "", "tool_calls": [WEATHER_CALL]}
    assert resp.route is not None and resp.route.usage == resp.usage is not None


async def test_stream_options_without_stream_is_dropped_and_recorded(
    server: FakeLLMServer,
) -> None:
    async with AsyncClient(config(server), env=KEY) as client:
        resp = await client.chat.completions.create(
            model=MODEL, messages=HELLO, stream_options={"include_usage": True}
        )
    assert "stream_options" not in server.requests[-1].body
    assert resp.route is not None and resp.route.dropped_params == ["stream_options"]


# -- README idioms on the answer objects -------------------------------------------------------


async def test_to_dict_and_to_json_as_the_sdk_spells_them(server: FakeLLMServer) -> None:
    import json

    async with AsyncClient(config(server), env=KEY) as client:
        resp = await client.chat.completions.create(model=MODEL, messages=HELLO)
        stream = await client.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
        chunks = [chunk async for chunk in stream]
    # As openai-python's: the fields the answer carried (exclude_unset), no genrouter route.
    as_dict = resp.to_dict()
    assert as_dict["choices"][0]["message"]["content"] == "echo: Say hello"
    assert "route" not in as_dict and "system_fingerprint" not in as_dict
    assert json.loads(resp.to_json()) == resp.to_dict(mode="json")
    assert resp.to_json().startswith('{\n  "id"')  # indented by 2, as the SDK's
    assert resp.to_dict(exclude_unset=False)["system_fingerprint"] is None
    assert chunks[0].to_dict()["object"] == "chat.completion.chunk"
    # The SDK's own model reads genrouter's JSON unchanged.
    sdk = openai.types.chat.ChatCompletion.model_validate_json(resp.to_json())
    assert sdk.choices[0].message.content == "echo: Say hello"


def _sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json_bytes(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def json_bytes(value: object) -> bytes:
    import json

    return json.dumps(value).encode()


def _chunk(index: int, content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {"content": content} if content else {}
    choice = {"index": index, "delta": delta, "finish_reason": finish}
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [choice],
    }


async def test_n_choices_and_logprobs_read_as_with_the_sdk(server: FakeLLMServer) -> None:
    token = {
        "token": "A",
        "logprob": -0.1,
        "bytes": [65],
        "top_logprobs": [{"token": "B", "logprob": -2.5}],
    }
    body = {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "A"},
                "finish_reason": "stop",
                "logprobs": {"content": [token], "refusal": None},
            },
            {
                "index": 1,
                "message": {"role": "assistant", "content": "B"},
                "finish_reason": "stop",
                "logprobs": None,
            },
        ],
    }
    server.enqueue(Reply(body_200=json_bytes(body), headers={"content-type": "application/json"}))
    stream_events = [_chunk(0, "A1"), _chunk(1, "B1"), _chunk(0, " A2"), _chunk(1, " B2")]
    stream_events += [_chunk(0, finish="stop"), _chunk(1, finish="stop")]
    server.enqueue(Reply(body_200=_sse(*stream_events)))
    async with AsyncClient(config(server), env=KEY) as client:
        resp = await client.chat.completions.create(
            model=MODEL, messages=HELLO, n=2, logprobs=True, top_logprobs=1
        )
        stream = await client.chat.completions.create(model=MODEL, messages=HELLO, n=2, stream=True)
        by_choice: dict[int, str] = {}
        async for chunk in stream:
            for choice in chunk.choices:
                by_choice[choice.index] = by_choice.get(choice.index, "") + (
                    choice.delta.content or ""
                )
        final = stream.get_final_completion()
    assert [c.message.content for c in resp.choices] == ["A", "B"]
    logprobs = resp.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert logprobs.content[0].logprob == -0.1  # objects, as the SDK's
    assert logprobs.content[0].top_logprobs[0].token == "B"
    assert by_choice == {0: "A1 A2", 1: "B1 B2"}
    assert [(c.index, c.message.content) for c in final.choices] == [(0, "A1 A2"), (1, "B1 B2")]
