"""The client never stalls its event loop: asyncio's debug mode reports any slow callback.

asyncio in debug mode logs ``Executing <Task ...> took 0.123 seconds`` on the ``asyncio``
logger for every callback that runs longer than ``loop.slow_callback_duration``. These tests
run the first request of a fresh client (its first routing loads tokenizer files, its first
remote request builds the HTTP stack), a stream, and a request with a 390 KB prompt (token
counting of a long text), and fail on any such report.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from genrouter.client import AsyncClient
from genrouter.testing import FakeLLMServer, Reply

# Well above a normal callback here (tens of microseconds) and well below the stalls this
# guards against (tokenizer files ~300 ms, counting 390 KB ~140 ms, on a loaded 2-core box).
SLOW_CALLBACK_S = 0.05
BIG_PROMPT = "All work and no play makes Jack a dull boy. " * 9_000  # ~390 KB


def _config(server: FakeLLMServer) -> dict[str, Any]:
    return {
        "providers": {
            "openai": {"type": "openai", "base_url": server.openai_base_url},
            "dashscope": {"type": "dashscope", "base_url": server.dashscope_base_url},
        },
        "routes": {"default": {"candidates": ["openai/o3-mini", "dashscope/qwen-max"]}},
    }


ENV = {"OPENAI_API_KEY": "sk-stall-test-123456", "DASHSCOPE_API_KEY": "sk-stall-test-654321"}


def _stalls(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "asyncio" and "took" in record.getMessage()
    ]


@pytest.fixture
async def watched_loop(caplog: pytest.LogCaptureFixture) -> asyncio.AbstractEventLoop:
    """The test's loop in debug mode, reporting callbacks slower than SLOW_CALLBACK_S."""
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW_CALLBACK_S
    caplog.set_level(logging.WARNING, logger="asyncio")
    return loop


async def test_first_requests_and_a_huge_prompt_never_stall_the_loop(
    watched_loop: asyncio.AbstractEventLoop,
    caplog: pytest.LogCaptureFixture,
    fake_server: FakeLLMServer,
) -> None:
    assert len(BIG_PROMPT) > 390_000
    fake_server.enqueue(Reply.text("first"), Reply(chunks=["str", "eam"]), Reply.text("big"))
    async with AsyncClient(_config(fake_server), env=ENV) as client:
        first = await client.chat.completions.create(messages=[{"role": "user", "content": "hi"}])
        assert first.choices[0].message.content == "first"
        stream = await client.chat.completions.create(
            messages=[{"role": "user", "content": "again"}], stream=True
        )
        async with stream:
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "stream"
        big = await client.chat.completions.create(
            messages=[{"role": "user", "content": BIG_PROMPT}]
        )
        assert big.choices[0].message.content == "big"
        assert big.route is not None and big.route.decision is not None
        assert big.route.decision.prompt_tokens > 80_000  # really counted, not skipped
    assert len(fake_server.requests) == 3
    assert _stalls(caplog) == []


async def test_the_stall_detector_itself_works(
    watched_loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    """A deliberate stall is reported, so an empty report above means something."""
    import time

    async def stall() -> None:
        time.sleep(SLOW_CALLBACK_S * 3)

    await asyncio.create_task(stall())
    assert len(_stalls(caplog)) == 1
