"""The client never stalls its event loop: asyncio's debug mode reports any slow callback.

asyncio in debug mode logs ``Executing <Task ...> took 0.123 seconds`` on the ``asyncio``
logger for every callback that runs longer than ``loop.slow_callback_duration``. These tests
run the first request of a fresh client (its first routing loads tokenizer files, its first
remote request builds the HTTP stack), a stream, and a request with a 390 KB prompt (token
counting of a long text), a request for a model not planned before (another tokenizer,
another provider), and fail on any such report.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from genrouter.client import AsyncClient

# Far above a normal callback (tens of microseconds; the client's first request has one of
# ~20 ms CPU, which a loaded 2-core machine stretches to ~60 ms of wall time) and below every
# stall this guards against (measured here before the fixes: building providers and the HTTP
# pool ~0.75 s, tokenizer files ~0.3 s, anyio's backend import ~0.15 s, counting 390 KB
# ~0.14 s).
SLOW_CALLBACK_S = 0.1
BIG_PROMPT = "All work and no play makes Jack a dull boy. " * 9_000  # ~390 KB


@pytest.fixture
def server_url() -> Iterator[str]:
    """The fake server in its own process, answering "ok" to everything.

    In-process, its thread would compete with the client for the GIL while it reads a 390 KB
    body, and the client's socket writes would look slow for a reason real servers never cause.
    """
    with subprocess.Popen(
        [sys.executable, "-m", "genrouter.testing", "serve", "--port", "0", "--reply-text", "ok"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        try:
            yield proc.stdout.readline().strip().removesuffix("/v1")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            proc.stdout.close()


def _config(base: str) -> dict[str, Any]:
    return {
        "providers": {
            "openai": {"type": "openai", "base_url": base + "/v1"},
            "dashscope": {"type": "dashscope", "base_url": base + "/compatible-mode/v1"},
        },
        "routes": {"default": {"candidates": ["openai/gpt-6-luna"]}},
    }


ENV = {"OPENAI_API_KEY": "sk-stall-test-123456", "DASHSCOPE_API_KEY": "sk-stall-test-654321"}


def _stalls(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "asyncio" and "took" in record.getMessage()
    ]


def _watch(caplog: pytest.LogCaptureFixture) -> None:
    """Put the running loop in debug mode, reporting callbacks slower than SLOW_CALLBACK_S."""
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW_CALLBACK_S
    caplog.set_level(logging.WARNING, logger="asyncio")


@pytest.mark.usefixtures("no_gc_pauses")
async def test_first_requests_and_a_huge_prompt_never_stall_the_loop(
    caplog: pytest.LogCaptureFixture, server_url: str
) -> None:
    assert len(BIG_PROMPT) > 390_000
    # Building the client (reading config, importing what it needs) is synchronous work its
    # caller chooses to do; the watch covers everything the client does once it exists.
    async with AsyncClient(_config(server_url), env=ENV) as client:
        _watch(caplog)
        first = await client.chat.completions.create(messages=[{"role": "user", "content": "hi"}])
        assert first.choices[0].message.content == "ok"
        stream = await client.chat.completions.create(
            messages=[{"role": "user", "content": "again"}], stream=True
        )
        async with stream:
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "ok"
        big = await client.chat.completions.create(
            messages=[{"role": "user", "content": BIG_PROMPT}]
        )
        assert big.choices[0].message.content == "ok"
        # A model planned for the first time: a new tokenizer (Qwen's) and a new provider.
        other = await client.chat.completions.create(
            model="dashscope/qwen-max", messages=[{"role": "user", "content": "hi"}]
        )
        assert other.route is not None and other.route.model == "dashscope/qwen-max"
        assert big.route is not None and big.route.decision is not None
        assert big.route.decision.prompt_tokens > 80_000  # really counted, not skipped
    assert _stalls(caplog) == []


async def test_the_stall_detector_itself_works(caplog: pytest.LogCaptureFixture) -> None:
    """A deliberate stall is reported, so an empty report above means something."""
    import time

    _watch(caplog)

    async def stall() -> None:
        time.sleep(SLOW_CALLBACK_S * 3)

    await asyncio.create_task(stall())
    assert len(_stalls(caplog)) == 1
