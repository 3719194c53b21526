"""Refreshing provider model lists: the fake server's /models, a provider that is down, and
a corrupt cache file."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from genrouter import AsyncClient, Client, MessageParam, ModelCacheWarning, ModelRetiredError
from genrouter.cli import main
from genrouter.refresh import cache_path, load_cache
from genrouter.testing import FakeLLMServer

HI: list[MessageParam] = [{"role": "user", "content": "hi"}]
KEYS = {"OPENAI_API_KEY": "sk-refresh-test-1234", "DASHSCOPE_API_KEY": "sk-ds-refresh-5678"}
DEC_1 = date(2026, 12, 1)


def wire(server: FakeLLMServer, *, dashscope_url: str | None = None) -> dict[str, Any]:
    return {
        "providers": {
            "openai": {"type": "openai", "base_url": server.openai_base_url},
            "dashscope": {
                "type": "dashscope",
                "base_url": dashscope_url or server.dashscope_base_url,
            },
        }
    }


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cache_location_follows_the_environment(tmp_path: Path) -> None:
    assert cache_path({"GENROUTER_CACHE_DIR": str(tmp_path)}) == tmp_path / "models.json"
    assert cache_path({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "genrouter/models.json"
    assert cache_path({}).parts[-3:] == (".cache", "genrouter", "models.json")


async def test_refresh_reads_models_with_shutdown_dates_and_adds_unknown_ones(
    fake_server: FakeLLMServer, tmp_path: Path
) -> None:
    fake_server.set_models(
        [
            {"id": "gpt-6-luna", "shutdown_date": None},
            {"id": "gpt-6.1-sol", "shutdown_date": "2026-12-15"},
            {"id": "gpt-7-nova"},
            {"id": "text-embedding-3-small"},
        ]
    )
    cache = tmp_path / "models.json"
    today = lambda: DEC_1  # noqa: E731
    async with AsyncClient(wire(fake_server), env=KEYS, today=today, model_cache=cache) as client:
        before = client.model_spec("openai/gpt-7-nova")
        assert before is not None and not before.added_by_refresh  # ad hoc, not catalogued
        report = await client.refresh_models()
        assert report.ok and report.written
        openai = next(p for p in report.providers if p.provider == "openai")
        assert openai.listed == 4
        assert openai.url == fake_server.openai_base_url + "/models"
        assert openai.added == ("openai/gpt-7-nova",)  # embeddings are not chat models
        # The same client uses the new list at once.
        nova = client.model_spec("openai/gpt-7-nova")
        assert nova is not None and nova.added_by_refresh
        assert nova.context_window == 8192 and nova.max_output_tokens == 4096
        assert nova.input_price is None and not nova.tools
        assert client.route(model="openai/gpt-7-nova", messages=HI).plan == ("openai/gpt-7-nova",)
        sol = client.model_spec("openai/gpt-6.1-sol")
        assert sol is not None and sol.shutdown_on == date(2026, 12, 15)
        assert sol.sources[-1].url == openai.url and sol.sources[-1].verified
    requests = [r for r in fake_server.requests if r.method == "GET"]
    assert {r.path for r in requests} == {"/v1/models", "/compatible-mode/v1/models"}
    assert requests[0].headers["authorization"].startswith("Bearer ")

    # A new client reads the cache at load: the provider's shutdown date now routes.
    later = AsyncClient(
        wire(fake_server), env=KEYS, today=lambda: date(2026, 12, 15), model_cache=cache
    )
    with pytest.raises(ModelRetiredError, match=r"gpt-6\.1-sol was retired on 2026-12-15"):
        later.route(model="gpt-6.1-sol", messages=HI)
    assert later.model_spec("openai/gpt-7-nova") is not None
    loaded = load_cache(cache)
    assert loaded is not None and loaded.providers["openai"].fetched_on == DEC_1


async def test_a_provider_that_is_down_keeps_its_previous_list(
    fake_server: FakeLLMServer, tmp_path: Path
) -> None:
    cache = tmp_path / "models.json"
    fake_server.set_models(["qwen-next-plus"])
    async with AsyncClient(wire(fake_server), env=KEYS, model_cache=cache) as client:
        first = await client.refresh_models()
    assert first.ok
    before = cache.read_bytes()

    down = wire(fake_server, dashscope_url=f"http://127.0.0.1:{closed_port()}/compatible-mode/v1")
    fake_server.set_models([], status=503)  # and OpenAI's list answers an error
    async with AsyncClient(down, env=KEYS, model_cache=cache) as client:
        report = await client.refresh_models(timeout_s=5)
        assert not report.ok and not report.written
        errors = {p.provider: p.error for p in report.providers}
        assert errors["openai"] == "ValueError: HTTP 503"
        assert errors["dashscope"] is not None and "Connect" in errors["dashscope"]
        assert "previous list kept" in report.summary()
        assert KEYS["DASHSCOPE_API_KEY"] not in report.summary()
        # The previous list still applies.
        assert client.model_spec("dashscope/qwen-next-plus") is not None
    assert cache.read_bytes() == before
    assert not list(tmp_path.glob(".models-*"))  # no temporary file left behind


def test_a_corrupt_cache_file_is_ignored_with_a_warning(tmp_path: Path) -> None:
    cache = tmp_path / "models.json"
    cache.write_text('{"version": 1, "providers": {"openai": {"url": 3')
    with pytest.warns(ModelCacheWarning, match="ignoring the corrupt model cache"):
        client = AsyncClient(env=KEYS, model_cache=cache, today=lambda: DEC_1)
    assert client.model_spec("openai/gpt-6-luna") is not None  # the built-in catalog
    cache.write_text(json.dumps({"version": 99, "providers": {}}))
    with pytest.warns(ModelCacheWarning, match="version 99"):
        AsyncClient(env=KEYS, model_cache=cache)


def test_sync_client_refresh_and_cli_refresh(
    fake_server: FakeLLMServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_server.set_models(["gpt-6-luna", "gpt-7-nova"])
    with Client(wire(fake_server), env=KEYS, model_cache=tmp_path / "a.json") as client:
        report = client.refresh_models()
    assert report.ok and ("openai/gpt-7-nova" in report.providers[0].added)

    config = tmp_path / "genrouter.json"
    config.write_text(json.dumps(wire(fake_server)))
    monkeypatch.setenv("GENROUTER_CACHE_DIR", str(tmp_path / "cli"))
    monkeypatch.setenv("OPENAI_API_KEY", KEYS["OPENAI_API_KEY"])
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    assert main(["--config", str(config), "models", "--refresh"]) == 0
    out, err = capsys.readouterr()
    assert "openai: 2 models listed, added openai/gpt-7-nova" in err
    assert "openai/gpt-7-nova (added by refresh)" in out
    assert (tmp_path / "cli" / "models.json").is_file()


async def test_any_openai_compatible_server_is_refreshed_too(
    fake_server: FakeLLMServer, tmp_path: Path
) -> None:
    fake_server.set_models(["llama-3.3-70b-instruct", "bge-m3-embedding"])
    config = {
        "providers": {
            "vllm": {"type": "openai_compatible", "base_url": fake_server.openai_base_url}
        }
    }
    async with AsyncClient(config, env={}, model_cache=tmp_path / "m.json") as client:
        report = await client.refresh_models()
        assert [(p.provider, p.added) for p in report.providers] == [
            ("vllm", ("vllm/llama-3.3-70b-instruct",))
        ]
        spec = client.model_spec("vllm/llama-3.3-70b-instruct")
        assert spec is not None and spec.added_by_refresh
        models = {s.spec.id: s for s in client.models()}
        assert models["vllm/llama-3.3-70b-instruct"].usable


def test_refresh_offline_for_real_keeps_the_cache_and_says_why(tmp_path: Path) -> None:
    """With no network at all (``unshare -rn``: loopback only, DNS fails), a refresh reports
    the failure, exits 0, leaves the old cache byte for byte, and the old list still applies."""
    if (
        shutil.which("unshare") is None
        or subprocess.run(["unshare", "-rn", "true"], capture_output=True, check=False).returncode
    ):
        pytest.skip("unshare -rn is not available here")
    cache = tmp_path / "models.json"
    old = {
        "version": 1,
        "providers": {
            "openai": {
                "url": "https://api.openai.com/v1/models",
                "fetched_on": "2026-11-30",
                "models": [{"id": "gpt-7-nova"}],
            }
        },
    }
    cache.write_text(json.dumps(old))
    before = cache.read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(
        OPENAI_API_KEY="sk-offline-test-123456",
        GENROUTER_CACHE_DIR=str(tmp_path),
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
    )
    env.pop("GENROUTER_CONFIG", None)
    done = subprocess.run(
        ["unshare", "-rn", sys.executable, "-m", "genrouter.cli", "models", "--refresh"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "openai: not refreshed (ConnectError" in done.stderr
    assert "previous list kept" in done.stderr
    assert "sk-offline-test-123456" not in done.stderr + done.stdout
    assert "openai/gpt-7-nova (added by refresh)" in done.stdout
    assert cache.read_bytes() == before
