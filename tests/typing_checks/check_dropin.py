"""Code written for openai-python, type-checked against genrouter (mypy and pyright, strict).

``tests/test_typing.py`` runs both checkers on this file (it must pass) and on
``dropin_wrong.py`` (each marked line must fail). mypy also checks it in the normal run.
"""

from __future__ import annotations

from typing import assert_type

from openai.types.chat import ChatCompletionMessageParam
from pydantic import BaseModel

from genrouter import AsyncClient, Client
from genrouter.params import MessageParam
from genrouter.streaming import AsyncChatStream, ChatStream
from genrouter.types import ChatCompletion, ChatCompletionChunk


async def async_idioms(client: AsyncClient) -> None:
    messages: list[MessageParam] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ]
    resp = await client.chat.completions.create(
        model="auto", messages=messages, temperature=0.2, max_tokens=50, store=False
    )
    assert_type(resp, ChatCompletion)
    # The answer goes back into the history as it is.
    history: list[MessageParam | BaseModel] = [*messages, resp.choices[0].message]
    history.append({"role": "user", "content": "More"})
    await client.chat.completions.create(model="auto", messages=history)
    stream = await client.chat.completions.create(
        model="auto",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-Trace": "1"},
    )
    assert_type(stream, AsyncChatStream)
    async with stream:
        async for chunk in stream:
            assert_type(chunk, ChatCompletionChunk)
    await client.close()


def sync_idioms(client: Client, sdk_history: list[ChatCompletionMessageParam]) -> None:
    # Histories typed with the openai SDK's own TypedDicts are accepted too.
    resp = client.chat.completions.create(model="auto", messages=sdk_history)
    assert_type(resp, ChatCompletion)
    with client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "Hi"}], stream=True
    ) as stream:
        assert_type(stream, ChatStream)
        for chunk in stream:
            print(chunk.choices[0].delta.content or "", end="")
    client.close()
