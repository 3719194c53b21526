"""The gateway's security rules, one test each: keys, rate limits, budgets, redaction, input."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from genrouter.cli import EXIT_OK, EXIT_USAGE, main
from genrouter.errors import ConfigError
from genrouter.server.app import _header
from genrouter.server.settings import check_bind, hash_key, load_gateway, new_key
from genrouter.state.limits import MemoryLimits
from genrouter.testing import FakeLLMServer, Reply
from tests.gateway_helpers import FAKE_PROVIDER_KEY, in_process_gateway, two_upstreams

HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]
KEY = new_key()
OTHER_KEY = new_key()


@pytest.fixture
def upstreams() -> Iterator[tuple[FakeLLMServer, FakeLLMServer]]:
    with FakeLLMServer() as first, FakeLLMServer() as second:
        yield first, second


def keyed(upstreams: tuple[FakeLLMServer, FakeLLMServer], **key: Any) -> dict[str, Any]:
    first, second = upstreams
    config = two_upstreams(first.openai_base_url, second.openai_base_url)
    config["gateway"] = {"keys": [{"hash": hash_key(KEY), "tenant": "team-a", **key}]}
    return config


def sdk(base_url: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)


def test_keys_are_required_and_checked_by_hash(
    upstreams: tuple[FakeLLMServer, FakeLLMServer],
) -> None:
    with in_process_gateway(keyed(upstreams)) as gw:
        with sdk(gw.base_url) as client:
            answer = client.chat.completions.create(model="default", messages=HI)
            assert answer.choices[0].message.content
        with (
            sdk(gw.base_url, OTHER_KEY) as client,
            pytest.raises(openai.AuthenticationError) as bad,
        ):
            client.chat.completions.create(model="default", messages=HI)
        assert bad.value.code == "invalid_api_key"
        missing = httpx2.post(gw.base_url + "/chat/completions", json={"messages": HI})
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "missing_api_key"
        assert httpx2.get(gw.base_url + "/models").status_code == 401
    assert KEY not in repr(load_gateway(keyed(upstreams)).settings)


def test_rate_limit_per_key_sliding_window(
    upstreams: tuple[FakeLLMServer, FakeLLMServer],
) -> None:
    config = keyed(upstreams, rate_limit=2, rate_window_s=60)
    with in_process_gateway(config) as gw, sdk(gw.base_url) as client:
        client.chat.completions.create(model="default", messages=HI)
        client.chat.completions.create(model="default", messages=HI)
        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(model="default", messages=HI)
    assert limited.value.code == "rate_limit_exceeded"
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 60
    assert len(upstreams[0].requests) == 2  # the refused request went nowhere


def test_budget_per_key(upstreams: tuple[FakeLLMServer, FakeLLMServer]) -> None:
    # Priced at $1000 per million tokens: one answer costs about half a cent.
    with in_process_gateway(keyed(upstreams, budget_usd=0.001)) as gw, sdk(gw.base_url) as client:
        raw = client.chat.completions.with_raw_response.create(model="default", messages=HI)
        assert float(raw.headers["x-genrouter-cost-usd"]) > 0.001
        with pytest.raises(openai.RateLimitError) as spent:
            client.chat.completions.create(model="default", messages=HI)
    assert spent.value.code == "budget_exceeded"
    assert spent.value.type == "insufficient_quota"
    assert len(upstreams[0].requests) == 1


def test_provider_key_never_leaves(
    upstreams: tuple[FakeLLMServer, FakeLLMServer], caplog: pytest.LogCaptureFixture
) -> None:
    """Upstreams that echo the provider key: not in bodies, headers, metrics or logs."""
    caplog.set_level(logging.DEBUG)
    echo = f"invalid key {FAKE_PROVIDER_KEY} for this project"
    first, second = upstreams
    seen: list[str] = []
    with in_process_gateway(keyed(upstreams)) as gw, sdk(gw.base_url) as client:
        first.enqueue(Reply.error(401, message=echo))
        second.enqueue(Reply.error(500, message=echo))
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="default", messages=HI)
        seen += [failed.value.response.text, str(failed.value.response.headers)]
        first.enqueue(Reply.text("one two three four", cut_after=2))
        stream = client.chat.completions.create(model="default", messages=HI, stream=True)
        with pytest.raises(openai.APIError) as broke:
            for _ in stream:
                pass
        seen.append(str(broke.value.body))
        first.enqueue(
            Reply(content="a b c", error_event={"error": {"message": echo}}, error_after=1)
        )
        stream = client.chat.completions.create(model="default", messages=HI, stream=True)
        with pytest.raises(openai.APIError) as event:
            for _ in stream:
                pass
        seen.append(str(event.value.body))
        seen.append(httpx2.get(gw.root + "/metrics").text)
        seen.append(
            httpx2.get(gw.base_url + "/models", headers={"authorization": f"Bearer {KEY}"}).text
        )
    # The upstreams' own words do reach the caller, masked.
    assert "invalid key *** for this project" in failed.value.message
    assert failed.value.status_code == 502
    seen.append(caplog.text)
    for text in seen:
        assert FAKE_PROVIDER_KEY not in text
        assert KEY not in text
    assert first.requests[0].headers["authorization"] == f"Bearer {FAKE_PROVIDER_KEY}"


def test_body_size_limit(upstreams: tuple[FakeLLMServer, FakeLLMServer]) -> None:
    config = two_upstreams(upstreams[0].openai_base_url, upstreams[1].openai_base_url)
    config["gateway"] = {"max_body_bytes": 2048}
    big = [{"role": "user", "content": "x" * 4096}]
    with in_process_gateway(config) as gw:
        response = httpx2.post(gw.base_url + "/chat/completions", json={"messages": big})
        small = httpx2.post(gw.base_url + "/chat/completions", json={"messages": HI})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert small.status_code == 200
    assert len(upstreams[0].requests) == 1


def test_local_image_paths_are_refused(upstreams: tuple[FakeLLMServer, FakeLLMServer]) -> None:
    config = two_upstreams(upstreams[0].openai_base_url, upstreams[1].openai_base_url)
    part = {"type": "image_url", "image_url": {"url": "/etc/passwd"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "hi"}, part]}]
    with in_process_gateway(config) as gw:
        response = httpx2.post(gw.base_url + "/chat/completions", json={"messages": messages})
        relative = dict(part, image_url={"url": "cat.png"})
        messages[0]["content"][1] = relative  # type: ignore[index]
        again = httpx2.post(gw.base_url + "/chat/completions", json={"messages": messages})
    for answer in (response, again):
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert error["param"] == "messages[0].content[1].image_url.url"
        assert error["code"] == "invalid_image_url"
    assert not upstreams[0].requests


def test_validation_errors_are_400_and_unknown_models_404(
    upstreams: tuple[FakeLLMServer, FakeLLMServer],
) -> None:
    config = two_upstreams(upstreams[0].openai_base_url, upstreams[1].openai_base_url)
    with in_process_gateway(config) as gw:
        url = gw.base_url + "/chat/completions"
        bad_json = httpx2.post(url, content=b"{not json")
        bad_param = httpx2.post(url, json={"messages": HI, "temperature": "hot"})
        unknown = httpx2.post(url, json={"model": "no-such-model", "messages": HI})
        wrong_method = httpx2.get(url)
    assert bad_json.status_code == 400
    assert bad_param.status_code == 400 and bad_param.json()["error"]["param"] == "temperature"
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert wrong_method.status_code == 405
    for answer in (bad_json, bad_param, unknown, wrong_method):
        assert set(answer.json()["error"]) == {"message", "type", "param", "code"}


def test_cors_is_off_by_default(upstreams: tuple[FakeLLMServer, FakeLLMServer]) -> None:
    config = two_upstreams(upstreams[0].openai_base_url, upstreams[1].openai_base_url)
    origin = {"origin": "https://evil.example", "access-control-request-method": "POST"}
    with in_process_gateway(config) as gw:
        preflight = httpx2.options(gw.base_url + "/chat/completions", headers=origin)
        plain = httpx2.get(gw.root + "/healthz", headers=origin)
    assert preflight.status_code == 405
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in plain.headers
    config["gateway"] = {"cors_origins": ["https://app.example"]}
    with in_process_gateway(config) as gw:
        allowed = httpx2.options(
            gw.base_url + "/chat/completions", headers={**origin, "origin": "https://app.example"}
        )
        other = httpx2.get(gw.root + "/healthz", headers=origin)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in other.headers


def test_unsafe_bind_is_refused_at_startup() -> None:
    settings = load_gateway({}).settings
    check_bind(settings, "127.0.0.1")
    check_bind(settings, "::1")
    with pytest.raises(ConfigError, match="no gateway keys") as refused:
        check_bind(settings, "0.0.0.0")
    assert refused.value.location == "gateway.keys"
    keyed_settings = load_gateway({"gateway": {"keys": [{"hash": hash_key(KEY), "tenant": "a"}]}})
    check_bind(keyed_settings.settings, "0.0.0.0")


def test_cli_serve_refuses_an_unsafe_config(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("[routes.default]\ncandidates = ['openai/gpt-6-luna']\n", encoding="utf-8")
    code = main(["serve", "--config", str(config), "--host", "0.0.0.0", "--port", "1"])
    assert code == EXIT_USAGE
    assert "refusing to listen on '0.0.0.0' with no gateway keys" in capsys.readouterr().err


def test_bad_gateway_table_names_the_field() -> None:
    with pytest.raises(ConfigError) as bad:
        load_gateway({"gateway": {"keys": [{"hash": KEY, "tenant": "a"}]}})
    assert bad.value.location == "gateway.keys[0].hash"
    assert KEY not in str(bad.value)


def test_cli_hash_key(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(KEY + "\n"))
    assert main(["serve", "--hash-key"]) == EXIT_OK
    assert capsys.readouterr().out.strip() == hash_key(KEY)
    assert main(["serve", "--new-key"]) == EXIT_OK
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.strip().splitlines())
    assert hash_key(lines["key"].strip()) == lines["hash"].strip()


def test_memory_limits_slide_and_forget() -> None:
    now = [1000.0]
    limits = MemoryLimits(clock=lambda: now[0])
    assert limits.hit("k", limit=2, window_s=10).allowed
    now[0] += 4
    assert limits.hit("k", limit=2, window_s=10).allowed
    refused = limits.hit("k", limit=2, window_s=10)
    assert not refused.allowed and refused.retry_after_s == pytest.approx(6.0)
    now[0] += 6.5  # the first hit left the window
    assert limits.hit("k", limit=2, window_s=10).allowed
    limits.spend("k", 0.5, window_s=64)
    assert limits.spent("k", window_s=64) == pytest.approx(0.5)
    assert limits.spent("other", window_s=64) == 0
    now[0] += 66
    assert limits.spent("k", window_s=64) == 0


def test_redis_limits_fall_back_to_local_counts_when_redis_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from genrouter.config import StateConfig
    from genrouter.state.redis_limits import RedisLimits
    from tests.real_servers import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    limits = RedisLimits(StateConfig(backend="redis", url=url, timeout_s=0.2))
    try:
        assert [limits.hit("k", limit=1, window_s=60).allowed for _ in range(2)] == [True, False]
        limits.spend("k", 0.5, window_s=60)
        assert limits.spent("k", window_s=60) == pytest.approx(0.5)
    finally:
        limits.close()
    warnings = [r for r in caplog.records if "gateway limits" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


def test_the_key_names_the_tenant_for_rules(upstreams: tuple[FakeLLMServer, FakeLLMServer]) -> None:
    config = keyed(upstreams)
    config["routes"]["second"] = {"candidates": ["up2/m"]}
    config["rules"] = [{"when": {"metadata": {"tenant": "team-a"}}, "route": "second"}]
    with in_process_gateway(config) as gw, sdk(gw.base_url) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="auto",
            messages=HI,
            extra_body={"route_metadata": {"tenant": "someone-else"}},  # cannot be claimed
        )
    assert raw.headers["x-genrouter-route"] == "second"
    assert raw.headers["x-genrouter-model"] == "up2/m"


def test_the_gateway_pool_default_and_an_explicit_pool() -> None:
    default = load_gateway({}).config.pool
    assert (default.max_connections, default.max_keepalive_connections) == (100, 100)
    mine = load_gateway({"pool": {"max_connections": 10}}).config.pool
    assert mine.max_connections == 10 and mine.max_keepalive_connections == 20


def test_one_file_serves_the_client_and_the_gateway(tmp_path: Any) -> None:
    """``[gateway]`` sits in the file the client reads: ``genrouter chat --config`` takes it."""
    from genrouter.config import load_config

    path = tmp_path / "gateway.toml"
    path.write_text(
        f'[gateway]\n[[gateway.keys]]\nhash = "{hash_key(KEY)}"\ntenant = "team-a"\n',
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.gateway is not None
    assert config.gateway["keys"][0]["tenant"] == "team-a"
    settings = load_gateway(path)
    assert [key.tenant for key in settings.settings.keys] == ["team-a"]


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        ("up1/m", b"up1/m"),
        (" ~", b" ~"),
        (3, b"3"),
        ("a\r\nx-injected: 1", b"a??x-injected: 1"),
        ("tab\there\x7f", b"tab?here?"),
        ("modèle", b"mod?le"),
    ],
)
def test_route_header_values_are_printable_ascii(value: object, sent: bytes) -> None:
    assert _header(value) == sent
