"""Offline fallback through the whole client: remotes unreachable, a local model answers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from genrouter import AsyncClient
from genrouter.params import MessageParam
from tests.local.conftest import grammar

pytest.importorskip("llama_cpp")

pytestmark = pytest.mark.usefixtures("catalog_before_2026_retirements")  # names o3-mini etc.

KEYS = {"OPENAI_API_KEY": "sk-test-openai-0123456789", "DASHSCOPE_API_KEY": "sk-test-ds-9876543"}


def _refusing_pool(seen: list[str]) -> httpx2.AsyncClient:
    """An HTTP pool whose every connection attempt fails, as with no network (nothing is sent)."""

    def refuse(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.url.host)
        raise httpx2.ConnectError("[Errno 101] Network is unreachable", request=request)

    return httpx2.AsyncClient(transport=httpx2.MockTransport(refuse))


def _config(model_path: Path) -> dict[str, Any]:
    return {
        "models": {"local/tiny": {"path": str(model_path), "n_ctx": 512, "max_output_tokens": 64}},
        "routes": {
            "default": {
                "candidates": ["openai/o3-mini", "dashscope/qwen-max"],
                "fallbacks": ["local/tiny"],
            }
        },
        "offline": {"down_for_s": 60},
    }


async def test_unreachable_network_falls_back_to_the_local_model(tiny_gguf: Path) -> None:
    seen: list[str] = []
    pool = _refusing_pool(seen)
    messages: list[MessageParam] = [{"role": "user", "content": "Are you there?"}]
    async with AsyncClient(_config(tiny_gguf), env=KEYS, http_client=pool) as client:
        started = time.perf_counter()
        first = await client.chat.completions.create(
            messages=messages,
            provider_options=grammar("Yes, offline."),
        )
        first_elapsed = time.perf_counter() - started
        assert first.choices[0].message.content == "Yes, offline."
        info = first.route
        assert info is not None and info.model == "local/tiny"
        # o3-mini and qwen-max each failed to connect once, without backoff: a host that
        # cannot be reached is skipped for the rest of the request when the local model is
        # behind it, and "network unreachable" on two distinct hosts marks the network down.
        errors = [a.model for a in info.attempts if a.outcome == "error"]
        assert errors == ["openai/o3-mini", "dashscope/qwen-max"]
        assert info.attempts[0].error_type == "ProviderConnectionError"
        assert all(a.retry_delay_ms is None for a in info.attempts)
        assert len(set(seen)) == 2 and "api.openai.com" in seen
        hosts = set(seen)
        assert first_elapsed < 5.0

        started = time.perf_counter()
        second = await client.chat.completions.create(
            messages=messages, provider_options=grammar("Still here.")
        )
        elapsed = time.perf_counter() - started
    assert second.choices[0].message.content == "Still here."
    assert second.route is not None and second.route.decision is not None
    assert [a.model for a in second.route.attempts] == ["local/tiny"]
    reasons = {c.model: c.excluded_because for c in second.route.decision.candidates}
    assert "network marked down" in (reasons["openai/o3-mini"] or "")
    assert "network marked down" in (reasons["dashscope/qwen-max"] or "")
    assert set(seen) == hosts and len(seen) == 2  # the second request sent nothing anywhere
    assert elapsed < 5.0  # no connect timeout was waited for


async def test_no_keys_at_all_route_to_the_local_model_without_error(tiny_gguf: Path) -> None:
    seen: list[str] = []
    async with AsyncClient(_config(tiny_gguf), env={}, http_client=_refusing_pool(seen)) as client:
        resp = await client.chat.completions.create(
            messages=[{"role": "user", "content": "hi"}], provider_options=grammar("Local.")
        )
    assert resp.choices[0].message.content == "Local."
    assert resp.route is not None and resp.route.decision is not None
    assert seen == []
    assert all(
        (c.excluded_because or "").startswith("no credentials")
        for c in resp.route.decision.candidates
        if not c.fallback
    )
