"""Shared fixtures: the fake OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from genrouter.testing import FakeLLMServer


@pytest.fixture
def fake_server() -> Iterator[FakeLLMServer]:
    """A fresh :class:`FakeLLMServer` on 127.0.0.1, stopped after the test."""
    with FakeLLMServer() as server:
        yield server
