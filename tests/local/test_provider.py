"""LocalProvider end to end on tiny random-weight GGUF models (needs llama-cpp-python).

Random weights say nothing useful, so most tests pin the output with a grammar: that makes
the answer known in advance while everything else (templates, threads, queueing,
cancellation, usage) runs for real.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest

from genrouter.config import ProviderConfig
from genrouter.errors import ContextWindowExceededError
from genrouter.providers.local import LoadProgress, LocalProvider
from genrouter.types import ChatCompletionChunk
from tests.local.conftest import grammar, make_call, make_spec

pytest.importorskip("llama_cpp")


async def _collect(provider: LocalProvider, call: object) -> list[ChatCompletionChunk]:
    return [chunk async for chunk in provider.stream(call)]  # type: ignore[arg-type]


async def test_complete_uses_the_chat_template_and_counts_tokens(
    provider: LocalProvider, tiny_gguf: Path
) -> None:
    spec = make_spec(tiny_gguf)
    result = await provider.complete(make_call(spec, provider_options=grammar("hello there")))
    assert result.id.startswith("chatcmpl-local-")
    assert result.model == "local/tiny"
    assert result.choices[0].message.content == "hello there"
    assert result.choices[0].message.reasoning_content is None
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None
    # ChatML prompt, tokenized by the model itself: far more than the two words asked.
    assert result.usage.prompt_tokens > 20
    assert 0 < result.usage.completion_tokens <= len("hello there")
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens


async def test_length_limit_counts_exactly_max_tokens(
    provider: LocalProvider, tiny_gguf: Path
) -> None:
    result = await provider.complete(make_call(make_spec(tiny_gguf), max_tokens=7, temperature=0))
    assert result.choices[0].finish_reason == "length"
    assert result.usage is not None and result.usage.completion_tokens == 7


async def test_stream_chunks_and_final_usage(provider: LocalProvider, tiny_gguf: Path) -> None:
    chunks = await _collect(
        provider, make_call(make_spec(tiny_gguf), provider_options=grammar("one two three"))
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert len(chunks) > 3  # token by token, not in one piece
    assert chunks[-2].choices[0].finish_reason == "stop"
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


async def test_think_tags_split_in_complete_and_stream(
    provider: LocalProvider, tiny_gguf: Path
) -> None:
    spec = make_spec(tiny_gguf, reasoning_format="think_tags")
    options = grammar("<think>\nweigh it up\n</think>\n\nthe answer")
    result = await provider.complete(make_call(spec, provider_options=options))
    message = result.choices[0].message
    assert (message.reasoning_content, message.content) == ("weigh it up", "the answer")
    assert result.usage is not None and result.usage.completion_tokens_details is not None
    assert (result.usage.completion_tokens_details.reasoning_tokens or 0) > 0

    chunks = await _collect(provider, make_call(spec, provider_options=options))
    reasoning = "".join(c.choices[0].delta.reasoning_content or "" for c in chunks if c.choices)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert (reasoning, content) == ("weigh it up", "the answer")
    # Tags arrive cut into single characters, yet none leaks into either part.
    assert "<" not in reasoning + content


async def test_template_that_opens_the_thought(
    provider: LocalProvider, tiny_think_gguf: Path
) -> None:
    spec = make_spec(tiny_think_gguf, reasoning_format="think_tags", system_prompt="fold_into_user")
    call = make_call(spec, provider_options=grammar("only the close tag</think>answer"))
    chunks = await _collect(provider, call)
    reasoning = "".join(c.choices[0].delta.reasoning_content or "" for c in chunks if c.choices)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert (reasoning, content) == ("only the close tag", "answer")
    # Reasoning streamed before the closing tag was generated.
    first_reasoning = next(
        i for i, c in enumerate(chunks) if c.choices and c.choices[0].delta.reasoning_content
    )
    first_content = next(
        i for i, c in enumerate(chunks) if c.choices and c.choices[0].delta.content
    )
    assert first_reasoning < first_content


async def test_qa_prompt_for_a_model_without_template(
    provider: LocalProvider, tiny_qa_gguf: Path
) -> None:
    call = make_call(make_spec(tiny_qa_gguf), provider_options=grammar(" forty two"))
    result = await provider.complete(call)
    assert result.choices[0].message.content == "forty two"  # the format's space is dropped
    assert any("Q/A prompt" in note for note in call.notes)


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_object"},
        {
            "type": "json_schema",
            "json_schema": {
                "name": "point",
                "schema": {
                    "type": "object",
                    "properties": {
                        "x": {"type": "integer"},
                        "label": {"type": "string", "maxLength": 5},
                    },
                    "required": ["x", "label"],
                    "additionalProperties": False,
                },
            },
        },
    ],
)
async def test_structured_output_is_valid_json(
    provider: LocalProvider, tiny_gguf: Path, response_format: dict[str, object]
) -> None:
    spec = make_spec(tiny_gguf)
    # Random weights would babble inside a string until the limit; favouring '"' and '}'
    # (token ids 5 and 96 in the tiny vocabulary) lets the grammar close the JSON soon.
    call = make_call(
        spec,
        response_format=response_format,
        temperature=0,
        max_tokens=300,
        logit_bias={"5": 8, "96": 8},
    )
    result = await provider.complete(call)
    assert result.choices[0].finish_reason == "stop"
    value = json.loads(result.choices[0].message.content or "")
    assert isinstance(value, dict)
    if response_format["type"] == "json_schema":
        assert set(value) == {"x", "label"}
        assert isinstance(value["x"], int) and isinstance(value["label"], str)


async def test_two_concurrent_requests_are_both_right_and_do_not_overlap(
    provider: LocalProvider, tiny_gguf: Path
) -> None:
    spec = make_spec(tiny_gguf)
    seen: list[tuple[str, float]] = []

    async def run(tag: str, text: str) -> str:
        parts: list[str] = []
        async for chunk in provider.stream(make_call(spec, provider_options=grammar(text))):
            seen.append((tag, time.perf_counter()))
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        return "".join(parts)

    a_text, b_text = "a" * 60, "b" * 60
    a, b = await asyncio.gather(run("A", a_text), run("B", b_text))
    assert (a, b) == (a_text, b_text)
    order = [tag for tag, _ in seen]
    # Serialized: every chunk of one request comes before every chunk of the other.
    assert order == sorted(order) or order == sorted(order, reverse=True)
    assert order[0] == "A"  # first come, first served


async def test_breaking_out_of_a_stream_frees_the_model_promptly(
    provider: LocalProvider, tiny_gguf: Path
) -> None:
    spec = make_spec(tiny_gguf)
    long_call = make_call(spec, provider_options=grammar("z" * 350))
    stream = provider.stream(long_call)
    received = 0
    async for _chunk in stream:
        received += 1
        if received == 3:
            break
    started = time.perf_counter()
    await stream.aclose()
    result = await provider.complete(make_call(spec, provider_options=grammar("next")))
    assert result.choices[0].message.content == "next"
    assert time.perf_counter() - started < 2.0


async def test_cancelling_a_request_frees_the_model(
    provider: LocalProvider, tiny_gguf: Path
) -> None:
    spec = make_spec(tiny_gguf)
    task = asyncio.create_task(
        provider.complete(make_call(spec, provider_options=grammar("q" * 350)))
    )
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    result = await asyncio.wait_for(
        provider.complete(make_call(spec, provider_options=grammar("after"))), timeout=5
    )
    assert result.choices[0].message.content == "after"


async def test_prompt_longer_than_context_is_typed(
    provider: LocalProvider, tiny_gguf: Path
) -> None:
    spec = make_spec(tiny_gguf, n_ctx=64)
    with pytest.raises(ContextWindowExceededError, match="context window is"):
        await provider.complete(make_call(spec, "word " * 200))


async def test_preload_reports_progress_and_logs(
    tiny_gguf: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stages: list[LoadProgress] = []
    provider = LocalProvider("local", ProviderConfig(type="local"), env={})
    spec = make_spec(tiny_gguf)
    with caplog.at_level(logging.INFO, logger="genrouter.local"):
        await provider.preload(spec, progress=stages.append)
    assert [s.stage for s in stages] == ["resolving", "checking", "loading", "ready"]
    assert stages[-1].size_bytes == tiny_gguf.stat().st_size
    assert provider.is_loaded(spec)
    assert any(str(tiny_gguf) in r.getMessage() and " s" in r.getMessage() for r in caplog.records)
    await provider.aclose()
    assert not provider.is_loaded(spec)


async def test_idle_model_is_unloaded(tiny_gguf: Path) -> None:
    provider = LocalProvider("local", ProviderConfig(type="local", idle_unload_s=0.1), env={})
    spec = make_spec(tiny_gguf)
    await provider.complete(make_call(spec, provider_options=grammar("x")))
    assert provider.is_loaded(spec)
    for _ in range(50):
        await asyncio.sleep(0.05)
        if not provider.is_loaded(spec):
            break
    assert not provider.is_loaded(spec)
    # And it loads again on demand.
    result = await provider.complete(make_call(spec, provider_options=grammar("y")))
    assert result.choices[0].message.content == "y"
    await provider.aclose()


def test_provider_facts() -> None:
    provider = LocalProvider("local", ProviderConfig(type="local"), env={})
    assert provider.name == "local"
    assert provider.is_remote is False
    assert provider.has_credentials() is True
