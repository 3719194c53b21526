"""A stream that breaks mid-answer: the typed error with the partial text, or a seamless resume.

Against the bundled fake server: the first provider's connection drops after two chunks.
Without ``resume`` you get ``StreamInterruptedError`` holding exactly the text you received;
with ``resume=True`` the next candidate continues from that text and you read one answer.
"""

from __future__ import annotations

import asyncio

from genrouter import AsyncClient, StreamInterruptedError
from genrouter.params import MessageParam
from genrouter.testing import FakeLLMServer, Reply

QUESTION: list[MessageParam] = [{"role": "user", "content": "Tell me a very short story."}]


async def main() -> None:
    with FakeLLMServer() as server:
        config = {
            "providers": {
                "openai": {"type": "openai", "base_url": server.openai_base_url},
                "dashscope": {"type": "dashscope", "base_url": server.dashscope_base_url},
            },
            "routes": {"default": {"candidates": ["openai/gpt-6-luna", "dashscope/qwen-max"]}},
        }
        keys = {"OPENAI_API_KEY": "sk-example", "DASHSCOPE_API_KEY": "sk-example"}
        story = ["Once upon a time ", "a robot ", "learned to paint."]
        async with AsyncClient(config, env=keys) as client:
            server.enqueue(Reply(chunks=story, cut_after=2), model="gpt-6-luna")
            stream = await client.chat.completions.create(messages=QUESTION, stream=True)
            try:
                async for chunk in stream:
                    print(chunk.choices[0].delta.content or "" if chunk.choices else "", end="")
            except StreamInterruptedError as exc:
                print(f"\n-> interrupted; the caller has exactly {exc.partial_text!r}")

            server.enqueue(Reply(chunks=story, cut_after=2), model="gpt-6-luna")
            server.enqueue(Reply(chunks=["learned to paint."]), model="qwen-max")
            stream = await client.chat.completions.create(
                messages=QUESTION, stream=True, resume=True
            )
            async with stream:
                async for chunk in stream:
                    print(chunk.choices[0].delta.content or "" if chunk.choices else "", end="")
            final = stream.get_final_completion()
            assert final.route is not None
            print(f"\n-> one answer; resumed={final.route.resumed}, notes={final.route.notes}")


if __name__ == "__main__":
    asyncio.run(main())
