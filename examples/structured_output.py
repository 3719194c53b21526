"""Structured output and a tool loop, against the bundled fake server (no keys, no network).

``parse()`` asks for a ``Weather``; gpt-4o-mini's answer misses a field, so genrouter moves on
and Qwen's valid answer comes back as ``message.parsed``. Then a tool loop: the model calls
``get_weather``, the program runs it and sends the result back, the model answers.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
from pydantic import BaseModel

from genrouter import AsyncClient
from genrouter.testing import FakeLLMServer, Reply


class Weather(BaseModel):
    city: str
    temp_c: int


class GetWeather(BaseModel):
    """Current weather for a city."""

    city: str


async def main() -> None:
    with FakeLLMServer() as server:
        server.enqueue(Reply.text('{"city": "Paris"}'), model="gpt-4o-mini")
        server.enqueue(Reply.text('{"city": "Paris", "temp_c": 21}'), model="qwen-plus")
        server.enqueue(Reply.tool_call("GetWeather", {"city": "Paris"}), model="gpt-4o-mini")
        server.enqueue(Reply.text("It is 21C and sunny in Paris."), model="gpt-4o-mini")
        capable = {"tools": True, "json_schema": True, "json_object": True}
        config = {
            "providers": {
                "openai": {"type": "openai", "base_url": server.openai_base_url},
                "dashscope": {"type": "dashscope", "base_url": server.dashscope_base_url},
            },
            "models": {
                "openai/gpt-4o-mini": capable,
                "dashscope/qwen-plus": {**capable, "model": "qwen-plus"},
            },
            "routes": {
                "default": {"candidates": ["openai/gpt-4o-mini", "dashscope/qwen-plus"]},
                "tools": {"candidates": ["openai/gpt-4o-mini"]},
            },
        }
        keys = {"OPENAI_API_KEY": "sk-example", "DASHSCOPE_API_KEY": "sk-example"}
        async with AsyncClient(config, env=keys) as client:
            parsed = await client.chat.completions.parse(
                messages=[{"role": "user", "content": "Weather in Paris?"}],
                response_format=Weather,
            )
            assert parsed.route is not None
            for attempt in parsed.route.attempts:
                print(f"  {attempt.model}: {attempt.outcome} {attempt.error_type or ''}")
            print("parsed:", repr(parsed.choices[0].message.parsed))

            tools = [openai.pydantic_function_tool(GetWeather)]
            messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
            first = await client.chat.completions.parse(
                model="tools", messages=messages, tools=tools
            )
            message = first.choices[0].message
            assert message.tool_calls
            calls = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": c.function.model_dump(include={"name", "arguments"}),
                }
                for c in message.tool_calls
            ]
            messages.append({"role": "assistant", "content": None, "tool_calls": calls})
            for call in message.tool_calls:
                args = call.function.parsed_arguments
                print("tool call:", call.function.name, repr(args))
                assert isinstance(args, GetWeather)
                result = {"city": args.city, "temp_c": 21, "sky": "sunny"}
                messages.append(
                    {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}
                )
            final = await client.chat.completions.create(
                model="tools", messages=messages, tools=tools
            )
            print("answer:", final.choices[0].message.content)


if __name__ == "__main__":
    asyncio.run(main())
