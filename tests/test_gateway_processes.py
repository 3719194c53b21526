"""The gateway as real processes: two instances sharing a real redis-server, --workers, SIGTERM."""

from __future__ import annotations

import re
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
import redis
from openai.types.chat import ChatCompletionMessageParam

from genrouter.config import StateConfig
from genrouter.server.settings import hash_key, new_key
from genrouter.state.redis_limits import RedisLimits
from genrouter.testing import FakeLLMServer, Reply
from tests.gateway_helpers import start_gateway_process, two_upstreams, wait_ready, write_toml
from tests.redis_server import RedisServer

HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]


def shared_state(redis_server: RedisServer) -> dict[str, Any]:
    return {
        "backend": "redis",
        "url": redis_server.url,
        "namespace": f"gw-{uuid.uuid4().hex[:8]}",
        "timeout_s": 2.0,
    }


def sdk(base_url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)


def test_two_gateways_share_circuits_rate_limits_and_budgets(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    limited, budgeted = new_key(), new_key()
    with FakeLLMServer() as broken, FakeLLMServer() as healthy:
        broken.enqueue(*[Reply.error(500, message="down") for _ in range(20)])
        config = two_upstreams(broken.openai_base_url, healthy.openai_base_url)
        config["circuit_breaker"] = {"failure_threshold": 2, "cooldown_s": 60}
        config["state"] = shared_state(redis_server)
        config["gateway"] = {
            "keys": [
                {"hash": hash_key(limited), "tenant": "a", "rate_limit": 3, "rate_window_s": 60},
                {"hash": hash_key(budgeted), "tenant": "b", "budget_usd": 0.008},
            ]
        }
        path = write_toml(tmp_path / "gateway", config)
        one = start_gateway_process(path, tmp_path, wait=False)
        two = start_gateway_process(path, tmp_path, wait=False)
        try:
            wait_ready(one)
            wait_ready(two)
            with sdk(one.base_url, limited) as client:
                for _ in range(2):  # two failures on `broken`: the shared breaker opens
                    raw = client.chat.completions.with_raw_response.create(
                        model="default", messages=HI
                    )
                    assert raw.headers["x-genrouter-model"] == "up2/m"
            calls = len(broken.requests)
            with sdk(two.base_url, limited) as client:
                raw = client.chat.completions.with_raw_response.create(model="default", messages=HI)
                assert raw.headers["x-genrouter-attempts"] == "1"
                assert len(broken.requests) == calls  # the second gateway never called it
                # The rate limit (3 per minute) counted the first gateway's two requests.
                with pytest.raises(openai.RateLimitError) as limited_error:
                    client.chat.completions.create(model="default", messages=HI)
            assert limited_error.value.code == "rate_limit_exceeded"
            # Budget: spent on the first gateway ($0.005 each), refused on the second.
            with sdk(one.base_url, budgeted) as client:
                client.chat.completions.create(model="default", messages=HI)
                client.chat.completions.create(model="default", messages=HI)
            with (
                sdk(two.base_url, budgeted) as client,
                pytest.raises(openai.RateLimitError) as spent,
            ):
                client.chat.completions.create(model="default", messages=HI)
            assert spent.value.code == "budget_exceeded"
            metrics = httpx2.get(two.root + "/metrics").text
            assert 'genrouter_gateway_circuit_state{model="up1/m"} 2' in metrics
        finally:
            one.stop()
            two.stop()


def _requests_total(text: str) -> float:
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^genrouter_gateway_requests_total\{[^}]*\} (\S+)$", text, re.M)
    )


def test_workers_serve_and_aggregate_metrics(tmp_path: Path) -> None:
    with FakeLLMServer() as up:
        config = two_upstreams(up.openai_base_url, up.openai_base_url)
        gateway = start_gateway_process(
            write_toml(tmp_path / "gateway", config), tmp_path, workers=2
        )
        try:
            with sdk(gateway.base_url) as client:
                for _ in range(8):
                    assert client.chat.completions.create(model="default", messages=HI).choices
            deadline = time.monotonic() + 30
            total = 0.0
            while time.monotonic() < deadline:
                # Whichever worker answers, the count is the whole server's (snapshots: 1 s).
                total = _requests_total(httpx2.get(gateway.root + "/metrics").text)
                if total == 8:
                    break
                time.sleep(0.5)
            assert total == 8
        finally:
            gateway.stop()
        assert gateway.process.returncode == 0, gateway.log()[-2000:]


def test_sigterm_drains_an_open_stream(tmp_path: Path) -> None:
    with FakeLLMServer() as up:
        up.enqueue(Reply.text("one two three four five six", delay_between_chunks_s=0.3))
        config = two_upstreams(up.openai_base_url, up.openai_base_url)
        config["gateway"] = {"drain_s": 20}
        gateway = start_gateway_process(write_toml(tmp_path / "gateway", config), tmp_path)
        try:
            text = ""
            with sdk(gateway.base_url) as client:
                stream = client.chat.completions.create(model="default", messages=HI, stream=True)
                for number, chunk in enumerate(stream):
                    text += chunk.choices[0].delta.content or ""
                    if number == 1:
                        gateway.process.send_signal(signal.SIGTERM)
                        time.sleep(0.5)
                        # Draining: no new connections are accepted.
                        with pytest.raises(httpx2.ConnectError):
                            httpx2.get(gateway.root + "/healthz", timeout=2)
            assert text == "one two three four five six"
            # uvicorn re-raises the signal once it has shut down cleanly.
            assert gateway.process.wait(timeout=30) in (0, -signal.SIGTERM)
            assert "Traceback" not in gateway.log()
        finally:
            gateway.stop()


def test_a_stream_longer_than_drain_s_ends_with_an_error_event(tmp_path: Path) -> None:
    with FakeLLMServer() as up:
        words = " ".join(f"w{i}" for i in range(40))
        up.enqueue(Reply.text(words, delay_between_chunks_s=0.3))
        config = two_upstreams(up.openai_base_url, up.openai_base_url)
        config["gateway"] = {"drain_s": 1}
        gateway = start_gateway_process(write_toml(tmp_path / "gateway", config), tmp_path)
        try:
            with sdk(gateway.base_url) as client:
                stream = client.chat.completions.create(model="default", messages=HI, stream=True)
                with pytest.raises(openai.APIError) as cut:
                    for number, _ in enumerate(stream):
                        if number == 0:
                            gateway.process.send_signal(signal.SIGTERM)
            assert cut.value.code == "server_shutdown"
            assert gateway.process.wait(timeout=30) in (0, -signal.SIGTERM)
        finally:
            gateway.stop()


def test_redis_limits_are_atomic_namespaced_and_expire(redis_server: RedisServer) -> None:
    config = StateConfig.model_validate(shared_state(redis_server))
    first, second = RedisLimits(config), RedisLimits(config)
    raw = redis.Redis.from_url(redis_server.url)
    try:
        verdicts = [limits.hit("key1", limit=3, window_s=30) for limits in (first, second) * 3]
        assert [v.allowed for v in verdicts] == [True, True, True, False, False, False]
        assert 0 < verdicts[-1].retry_after_s <= 30
        first.spend("key1", 0.25, window_s=60)
        second.spend("key1", 0.5, window_s=60)
        assert first.spent("key1", window_s=60) == pytest.approx(0.75)
        keys = [k.decode() for k in raw.scan_iter(config.namespace + ":*") if isinstance(k, bytes)]
        assert sorted(keys) == [
            f"{config.namespace}:gw:rate:key1",
            f"{config.namespace}:gw:spend:key1",
        ]
        for key in keys:
            assert 0 < raw.pttl(key) <= 120_000
    finally:
        first.close()
        second.close()
        raw.close()
