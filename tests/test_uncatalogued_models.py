"""Uncatalogued ``provider/model`` names, including the o-series rules for any ``openai/o…``
model a user names (issue 15, "untested surface")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from genrouter import AsyncClient, MessageParam
from genrouter.errors import InvalidRequestError
from genrouter.testing import FakeLLMServer, Reply

KEYS = {"OPENAI_API_KEY": "sk-test-openai-0123456789"}
ASK: list[MessageParam] = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "hi"},
]


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


def _config(server: FakeLLMServer) -> dict[str, Any]:
    return {
        "providers": {
            "openai": {"type": "openai", "base_url": server.openai_base_url},
            "vllm": {"type": "openai_compatible", "base_url": server.openai_base_url},
        }
    }


@pytest.mark.parametrize("model", ["o1-2099-01-01", "o3-pro-next", "o4-mini-2099-12-31"])
async def test_any_o_series_name_gets_the_o_series_rules(server: FakeLLMServer, model: str) -> None:
    server.enqueue(Reply.text("hello"), model=model)
    async with AsyncClient(_config(server), env=KEYS) as client:
        assert f"openai/{model}" not in client._catalog  # really uncatalogued
        spec = client.model_spec(f"openai/{model}")
        assert spec is not None and spec.reasoning
        response = await client.chat.completions.create(
            model=f"openai/{model}", messages=ASK, max_tokens=20, temperature=0.3
        )
    sent = server.requests[0].body
    assert sent["model"] == model
    assert sent["messages"][0]["role"] == "developer"
    assert sent["max_completion_tokens"] == 20 and "max_tokens" not in sent
    assert "temperature" not in sent
    assert response.route is not None and response.route.dropped_params == ["temperature"]


@pytest.mark.parametrize("model", ["gpt-9-preview", "omni-moderation-next"])
async def test_other_openai_names_get_plain_defaults(server: FakeLLMServer, model: str) -> None:
    async with AsyncClient(_config(server), env=KEYS) as client:
        spec = client.model_spec(f"openai/{model}")
        assert spec is not None and not spec.reasoning
        await client.chat.completions.create(
            model=f"openai/{model}", messages=ASK, max_tokens=20, temperature=0.3
        )
    sent = server.requests[0].body
    assert sent["messages"][0]["role"] == "system"
    assert sent["max_tokens"] == 20 and sent["temperature"] == 0.3


async def test_a_compatible_provider_serves_any_model_name(server: FakeLLMServer) -> None:
    async with AsyncClient(_config(server), env={}) as client:
        decision = client.route(model="vllm/o3-lookalike", messages=ASK)
        assert decision.plan == ("vllm/o3-lookalike",)
        assert decision.prompt_tokens_method == "estimate"  # no tokenizer declared
        response = await client.chat.completions.create(
            model="vllm/o3-lookalike", messages=ASK, max_tokens=5, temperature=0.3
        )
    sent = server.requests[0].body
    # Only OpenAI's own o-series get the o-series rules; a compatible server keeps the request.
    assert sent["model"] == "o3-lookalike" and sent["messages"][0]["role"] == "system"
    assert sent["temperature"] == 0.3
    assert response.route is not None and response.route.model == "vllm/o3-lookalike"


def test_a_local_file_name_and_an_unknown_provider() -> None:
    client = AsyncClient({}, env={})
    spec = client.model_spec("local/models/my-model.gguf")
    assert spec is not None and spec.local and spec.path == "models/my-model.gguf"
    assert client.model_spec("nowhere/model") is None
    with pytest.raises(InvalidRequestError) as caught:
        client.route(model="nowhere/model", messages=ASK)
    assert caught.value.param == "model"
