"""Shared fixtures: the fake OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from genrouter.testing import FakeLLMServer

# The real llama.cpp OpenAI server (session-scoped; skipped where it cannot run, unless CI
# requires it): see tests/real_servers.py.
from tests.real_servers import llama_server

__all__ = ["fake_server", "llama_server"]


@pytest.fixture
def fake_server() -> Iterator[FakeLLMServer]:
    """A fresh :class:`FakeLLMServer` on 127.0.0.1, stopped after the test."""
    with FakeLLMServer() as server:
        yield server
