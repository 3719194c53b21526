"""What sharing routing state on Redis costs per request, against the in-memory backend.

Runs the same request loop against FakeLLMServer (loopback HTTP) three ways in one run:
the in-memory backend (the default), the Redis backend, and the Redis backend with a budget
(whose reserve and settle are two Lua calls per request). Prints the mean per-request time
of each and its ratio to the in-memory one (target: <= 1.1x on loopback). Starts its own
``redis-server`` on a free port (Debian's package: ``apt-get install -y redis-server``).

    python bench/state.py [-n 400]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from genrouter import AsyncClient
from genrouter.testing import FakeLLMServer

HI: Any = [{"role": "user", "content": "hi"}]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def config(base_url: str, state: dict[str, Any] | None, *, budget: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "providers": {"one": {"type": "openai_compatible", "base_url": base_url}},
        "models": {"one/m": {"context_window": 8000, "input_price": 1.0, "output_price": 1.0}},
        "routes": {"default": {"candidates": ["one/m"]}},
    }
    if budget:
        out["budget"] = {"limit_usd": 1e9}
    if state is not None:
        out["state"] = state
    return out


async def bench(n: int, redis_url: str) -> list[tuple[str, float]]:
    """Median ms per request of each case, measured in small interleaved batches so that
    drift on a noisy machine hits every case alike."""
    redis_state = {"backend": "redis", "url": redis_url, "namespace": "bench"}
    batch = 10
    async with FakeLLMServer() as server, contextlib.AsyncExitStack() as stack:
        url = server.openai_base_url
        cases = {
            "memory": config(url, None, budget=False),
            "redis": config(url, redis_state, budget=False),
            "memory + budget": config(url, None, budget=True),
            "redis + budget": config(url, redis_state, budget=True),
        }
        clients = {
            name: await stack.enter_async_context(AsyncClient(cfg, env={}))
            for name, cfg in cases.items()
        }
        for client in clients.values():  # warm-up: connections, tokenizers, caches
            for _ in range(20):
                await client.chat.completions.create(model="default", messages=HI)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(max(n // batch, 1)):
            for name, client in clients.items():
                started = time.perf_counter()
                for _ in range(batch):
                    await client.chat.completions.create(model="default", messages=HI)
                times[name].append((time.perf_counter() - started) * 1000 / batch)
        return [(name, statistics.median(times[name])) for name in cases]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=400, help="requests per case and round")
    args = parser.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server is not installed (apt-get install -y redis-server)", file=sys.stderr)
        return 1
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [binary, "--port", str(port), "--save", "", "--appendonly", "no"]
        cmd += ["--bind", "127.0.0.1", "--dir", tmp]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            rows = asyncio.run(bench(args.n, f"redis://127.0.0.1:{port}/0"))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    base = dict(rows)
    print(f"{'backend':<18} {'ms/request':>10} {'ratio':>6}")
    for name, ms in rows:
        ref = base["memory + budget" if "budget" in name else "memory"]
        print(f"{name:<18} {ms:>10.3f} {ms / ref:>5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
