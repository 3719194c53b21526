"""Mistakes the type checkers must catch (``tests/test_typing.py``); never imported or run.

Every line marked ``# expect-error`` must be reported by mypy and by pyright.
"""

from __future__ import annotations

from genrouter import AsyncClient
from genrouter.params import MessageParam

HI: list[MessageParam] = [{"role": "user", "content": "Hi"}]


async def mistakes(client: AsyncClient) -> None:
    create = client.chat.completions.create
    await create(model="auto", messages=HI, temprature=0.2)  # expect-error
    await create(model="auto", messages=[{"role": "user", "contnet": "Hi"}])  # expect-error
    await create(model="auto", messages=[{"role": "robot", "content": "Hi"}])  # expect-error
    await create(model="auto", messages=HI, max_tokens="many")  # expect-error
    await create(model="auto", messages=HI, reasoning_effort="extreme")  # expect-error
