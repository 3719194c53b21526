"""Offline for real: the client inside a network namespace with loopback only (``unshare -rn``).

Each test runs a small script in a subprocess under ``unshare -rn``: there, DNS fails at once
and nothing leaves the machine. Where the kernel refuses user namespaces the tests are skipped
with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llama_cpp")

ROOT = Path(__file__).resolve().parent.parent


def _namespace_or_skip() -> None:
    if shutil.which("unshare") is None:
        pytest.skip("the unshare command is not installed")
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"the kernel refuses a user network namespace: {probe.stderr.strip()}")


def run_offline(script: str, tmp_path: Path, **env: str) -> dict[str, Any]:
    """Run *script* under ``unshare -rn``; it prints one JSON object last."""
    _namespace_or_skip()
    path = tmp_path / "offline_script.py"
    path.write_text(textwrap.dedent(script))
    environment = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    environment.pop("GENROUTER_CONFIG", None)
    environment.update(env, PYTHONPATH=str(ROOT))
    # A new namespace's loopback starts down: bring it up (loopback only, nothing else).
    up = 'ip link set lo up 2>/dev/null; exec "$0" "$@"'
    done = subprocess.run(
        ["unshare", "-rn", "sh", "-c", up, sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=180,
        env=environment,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    from tests.local._tiny_gguf import CHATML_TEMPLATE, build_tiny_gguf

    return build_tiny_gguf(tmp_path / "tiny.gguf", chat_template=CHATML_TEMPLATE)


def test_with_a_key_set_and_no_network_the_local_model_answers(
    tmp_path: Path, tiny_model: Path
) -> None:
    script = f"""
    import asyncio, json, socket, time
    from genrouter import AsyncClient

    async def main():
        config = {{
            "models": {{"local/tiny": {{"path": {str(tiny_model)!r}, "n_ctx": 512,
                                       "max_output_tokens": 8}}}},
            "routes": {{"default": {{"candidates": ["openai/gpt-6-luna"],
                                    "fallbacks": ["local/tiny"]}}}},
        }}
        try:
            socket.getaddrinfo("api.openai.com", 443)
            dns = "works"
        except OSError as exc:
            dns = type(exc).__name__
        async with AsyncClient(config) as client:
            first = await client.chat.completions.create(
                model="default", messages=[{{"role": "user", "content": "hi"}}], max_tokens=4)
            started = time.monotonic()
            second = await client.chat.completions.create(
                model="default", messages=[{{"role": "user", "content": "hi"}}], max_tokens=4)
            second_s = time.monotonic() - started
        print(json.dumps({{
            "dns": dns,
            "first_model": first.route.model,
            "first_attempts": [[a.model, a.outcome, a.error_type, a.error]
                               for a in first.route.attempts],
            "second_model": second.route.model,
            "second_attempts": [a.model for a in second.route.attempts],
            "second_excluded": [c.excluded_because for c in second.route.decision.candidates],
            "second_s": second_s,
        }}))

    asyncio.run(main())
    """
    result = run_offline(script, tmp_path, OPENAI_API_KEY="sk-fake-offline-0123456789")
    assert result["dns"] != "works"
    assert result["first_model"] == "local/tiny"
    model, outcome, error_type, error = result["first_attempts"][0]
    assert (model, outcome, error_type) == ("openai/gpt-6-luna", "error", "ProviderConnectionError")
    assert "could not connect" in error
    remote_tries = [a for a in result["first_attempts"] if a[0] == "openai/gpt-6-luna"]
    assert len(remote_tries) == 1  # no backoff
    # The second request says why without trying the remote at all: instant fallback.
    assert result["second_model"] == "local/tiny"
    assert result["second_attempts"] == ["local/tiny"]
    assert "offline" in (result["second_excluded"][0] or "")
    assert "sk-fake-offline" not in json.dumps(result)


def test_one_refusing_provider_leaves_the_other_every_request(
    tmp_path: Path, tiny_model: Path
) -> None:
    script = f"""
    import asyncio, json, socket
    from genrouter import AsyncClient
    from genrouter.testing import FakeLLMServer

    async def main():
        with socket.socket() as sock:  # a port where nothing listens: connections refused
            sock.bind(("127.0.0.1", 0))
            dead_port = sock.getsockname()[1]
        with FakeLLMServer() as live:
            config = {{
                "providers": {{
                    "dead": {{"type": "openai_compatible",
                              "base_url": f"http://127.0.0.1:{{dead_port}}/v1"}},
                    "live": {{"type": "openai_compatible", "base_url": live.openai_base_url}},
                }},
                "models": {{"dead/m": {{}}, "live/m": {{}},
                           "local/tiny": {{"path": {str(tiny_model)!r}, "n_ctx": 512,
                                          "max_output_tokens": 8}}}},
                "routes": {{"default": {{"candidates": ["dead/m", "live/m"],
                                        "fallbacks": ["local/tiny"]}}}},
            }}
            answered = []
            async with AsyncClient(config) as client:
                for _ in range(4):
                    response = await client.chat.completions.create(
                        model="default", messages=[{{"role": "user", "content": "hi"}}])
                    answered.append(response.route.model)
            print(json.dumps({{"answered": answered, "live_requests": len(live.requests)}}))

    asyncio.run(main())
    """
    if shutil.which("ip") is None:
        pytest.skip("the ip command is needed to bring loopback up inside the namespace")
    result = run_offline(script, tmp_path)
    assert result["answered"] == ["live/m"] * 4
    assert result["live_requests"] == 4
