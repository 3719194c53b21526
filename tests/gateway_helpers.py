"""Running the gateway in tests: in-process (uvicorn in a thread) or as real processes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.real_servers import free_port, stop_process

__all__ = [
    "FAKE_PROVIDER_KEY",
    "GatewayProcess",
    "InProcessGateway",
    "in_process_gateway",
    "start_gateway_process",
    "two_upstreams",
    "wait_ready",
    "write_toml",
]

#: A recognisable provider key: no response, header, log line or metric may ever show it.
FAKE_PROVIDER_KEY = "upkey-GWTEST-0123456789abcdef-PROVIDER-SECRET"
ROOT = Path(__file__).resolve().parent.parent


def two_upstreams(first: str, second: str, *, resume: bool = False, **extra: Any) -> dict[str, Any]:
    """A config with route ``default`` = ``up1/m`` then ``up2/m`` (priced, keyed)."""
    price = {"context_window": 8000, "input_price": 1000.0, "output_price": 1000.0}
    config: dict[str, Any] = {
        "providers": {
            "up1": {"type": "openai_compatible", "base_url": first, "api_key": "${UP_KEY}"},
            "up2": {"type": "openai_compatible", "base_url": second, "api_key": "${UP_KEY}"},
        },
        "models": {"up1/m": dict(price), "up2/m": dict(price)},
        "routes": {
            "default": {
                "candidates": ["up1/m", "up2/m"],
                "retry": {"attempts": 1},
                "resume": resume,
            }
        },
    }
    config.update(extra)
    return config


@dataclass
class InProcessGateway:
    base_url: str  # http://127.0.0.1:PORT/v1
    app: Any

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/v1")


@contextlib.contextmanager
def in_process_gateway(
    config: Mapping[str, Any], *, env: Mapping[str, str] | None = None
) -> Iterator[InProcessGateway]:
    """The gateway app on uvicorn in a background thread, on a free 127.0.0.1 port."""
    import uvicorn

    from genrouter.server.app import Gateway
    from genrouter.server.run import http_protocol
    from genrouter.server.settings import load_gateway

    env = {"UP_KEY": FAKE_PROVIDER_KEY} if env is None else env
    app = Gateway(load_gateway(config, env=env), env=env)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan="on",
            log_level="warning",
            access_log=False,
            loop="asyncio",
            http=http_protocol(),  # as `genrouter serve` runs it
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the in-process gateway did not start")
        time.sleep(0.01)
    try:
        yield InProcessGateway(f"http://127.0.0.1:{port}/v1", app)
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def write_toml(path: Path, config: Mapping[str, Any]) -> Path:
    """*config* as a JSON config file (genrouter reads .json as well as .toml)."""
    path = path.with_suffix(".json")
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@dataclass
class GatewayProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process)


def start_gateway_process(
    config_path: Path,
    tmp_dir: Path,
    *,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    wait: bool = True,
) -> GatewayProcess:
    """``python -m genrouter serve`` on a free port; waits for ``/healthz``."""
    port = free_port()
    log_path = tmp_dir / f"gateway-{port}.log"
    run_env = {**os.environ, "UP_KEY": FAKE_PROVIDER_KEY, "PYTHONPATH": str(ROOT)}
    run_env.update(env or {})
    args = [sys.executable, "-m", "genrouter", "serve", "--config", str(config_path)]
    args += ["--port", str(port), "--workers", str(workers)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=run_env)
    gateway = GatewayProcess(process, port, log_path)
    if wait:
        wait_ready(gateway)
    return gateway


def wait_ready(gateway: GatewayProcess) -> GatewayProcess:
    """Wait until *gateway* answers ``/healthz`` (fail the test if it exits or takes 60 s)."""
    process = gateway.process
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            pytest.fail(f"the gateway exited: {gateway.log()[-3000:]}")
        with contextlib.suppress(httpx2.HTTPError):
            if httpx2.get(gateway.root + "/healthz", timeout=1).status_code == 200:
                return gateway
        if time.monotonic() > deadline:
            gateway.stop()
            pytest.fail(f"the gateway did not answer within 60s: {gateway.log()[-3000:]}")
        time.sleep(0.1)
