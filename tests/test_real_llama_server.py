"""Smoke test: genrouter against llama-cpp-python's real OpenAI server (Gemma demo)."""

from __future__ import annotations

import pytest

from genrouter import AsyncClient
from tests.real_servers import LlamaServer

pytestmark = pytest.mark.slow


def real_client(server: LlamaServer) -> AsyncClient:
    """A client whose only route is the real server's model."""
    return AsyncClient(
        {
            "providers": {"llama": {"type": "openai_compatible", "base_url": server.base_url}},
            "models": {"llama/gemma": {"context_window": 512, "max_output_tokens": 64}},
            "routes": {"default": {"candidates": ["llama/gemma"]}},
        },
        env={},
    )


async def test_real_server_answers_a_plain_question(llama_server: LlamaServer) -> None:
    async with real_client(llama_server) as client:
        response = await client.chat.completions.create(
            model="llama/gemma",
            messages=[{"role": "user", "content": "What is the capital of Japan?"}],
            max_tokens=16,
            temperature=0,
        )
    assert response.route is not None and response.route.model == "llama/gemma"
    assert response.choices[0].finish_reason in ("stop", "length")
    assert response.usage is not None and response.usage.prompt_tokens > 0
