"""Shared fixtures: the fake OpenAI-compatible server."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import date

import pytest

from genrouter.testing import FakeLLMServer

# The real llama.cpp OpenAI server (session-scoped; skipped where it cannot run, unless CI
# requires it): see tests/real_servers.py.
from tests.real_servers import llama_server

# A real redis-server for the shared-state tests (session-scoped): see tests/redis_server.py.
from tests.redis_server import redis_server

__all__ = [
    "catalog_before_2026_retirements",
    "fake_server",
    "llama_server",
    "redis_server",
]

# A date before OpenAI's 2026-04-22 deprecations and Alibaba's notice 731, when o3-mini, gpt-4o,
# qwen-vl-max and the rest were all live.
BEFORE_2026_RETIREMENTS = date(2026, 4, 1)


@pytest.fixture
def catalog_before_2026_retirements(monkeypatch: pytest.MonkeyPatch) -> date:
    """Pin the date that clients built without ``today=`` judge model lifecycles by.

    For tests about routing, wire rules and errors that name models retired or deprecated
    since (o3-mini, gpt-4o, qwen-vl-max…): what they check does not depend on the date, so
    they run as of :data:`BEFORE_2026_RETIREMENTS` instead of breaking as dates pass.
    Lifecycle itself is tested in tests/test_lifecycle.py with explicit dates.
    """
    monkeypatch.setattr("genrouter.lifecycle.utc_today", lambda: BEFORE_2026_RETIREMENTS)
    return BEFORE_2026_RETIREMENTS


@pytest.fixture
def no_gc_pauses() -> Iterator[None]:
    """The cyclic garbage collector paused for one test (after a full collection first).

    For tests that time the event loop's callbacks: late in a full run, one collection of
    everything earlier tests left behind can take longer than the stall they look for, in
    whichever callback happens to allocate at that moment. That is not what they measure.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.fixture
def fake_server() -> Iterator[FakeLLMServer]:
    """A fresh :class:`FakeLLMServer` on 127.0.0.1, stopped after the test."""
    with FakeLLMServer() as server:
        yield server


def pytest_unconfigure(config: pytest.Config) -> None:
    """Close the two /dev/null files llama_cpp opens at import and never closes.

    ``llama_cpp._utils`` keeps ``outnull_file`` and ``errnull_file`` (``open(os.devnull, "w")``)
    at module level for the process's life; at interpreter exit they were reported as
    ``ResourceWarning: unclosed file <... name='/dev/null' ...>`` after every full run.
    """
    import sys

    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(utils, name, None)
        if handle is not None and not handle.closed:
            handle.close()
