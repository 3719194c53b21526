"""Retries, fallbacks and the route info, against the bundled fake server (no keys, no network).

OpenAI answers 429 (with Retry-After) and then three 503s; genrouter retries, gives up on
gpt-6-luna, and DashScope's Qwen2.5-Max answers. The route info tells the whole story.
"""

from __future__ import annotations

import asyncio

from genrouter import AsyncClient, AsyncHooks
from genrouter.routing.explain import render_route_info
from genrouter.testing import FakeLLMServer, Reply
from genrouter.types import Attempt


async def main() -> None:
    with FakeLLMServer() as server:
        server.enqueue(
            Reply.error(429, code="rate_limit_exceeded", headers={"Retry-After": "0.2"}),
            *[Reply.error(503, code="overloaded")] * 3,
            model="gpt-6-luna",
        )
        server.enqueue(Reply.text("Paris is the capital of France."), model="qwen-max")
        config = {
            "providers": {
                "openai": {"type": "openai", "base_url": server.openai_base_url},
                "dashscope": {"type": "dashscope", "base_url": server.dashscope_base_url},
            },
            "routes": {
                "default": {
                    "candidates": ["openai/gpt-6-luna", "dashscope/qwen-max"],
                    "retry": {"attempts": 4, "backoff": {"initial_ms": 50, "max_ms": 200}},
                }
            },
        }

        def on_attempt_end(attempt: Attempt) -> None:
            print(f"  hook: {attempt.model} -> {attempt.outcome} {attempt.error_type or ''}")

        keys = {"OPENAI_API_KEY": "sk-example", "DASHSCOPE_API_KEY": "sk-example"}
        hooks = AsyncHooks(on_attempt_end=on_attempt_end)
        async with AsyncClient(config, env=keys, hooks=hooks) as client:
            response = await client.chat.completions.create(
                messages=[{"role": "user", "content": "What is the capital of France?"}],
                max_tokens=50,
            )
        print(response.choices[0].message.content)
        assert response.route is not None
        print(render_route_info(response.route))


if __name__ == "__main__":
    asyncio.run(main())
