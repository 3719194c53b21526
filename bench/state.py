"""What sharing routing state on Redis costs per request, against the in-memory backend.

Part 1 runs the same request loop against FakeLLMServer (loopback HTTP) four ways in one
run: the in-memory backend (the default) and the Redis backend, each without and with a
budget. Prints the median per-request time of each, its ratio to the in-memory one (target:
<= 1.1x on loopback) and how often a request waited for Redis.

Part 2 (``--clients``) measures the three ways of calling Redis from an event loop that the
backend could use: redis-py's sync client inline, the sync client on a worker thread, and
redis-py's asyncio client: the cost of one script call on loopback, and how long the loop
stops while ``redis-server`` is hung (SIGSTOP) and each call waits out a 50 ms timeout.

Starts its own ``redis-server`` on a free port (Debian's package: ``apt-get install -y
redis-server``).

    python bench/state.py [-n 400] [--clients]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import logging
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
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


async def bench(n: int, redis_url: str) -> list[tuple[str, float, float, float, float | None]]:
    """Per case: median wall ms per request, the median of its per-round ratio to the
    in-memory case, CPU ms per request (every thread of this process: the Redis I/O thread
    included) and Redis waits per request. Cases run in small interleaved batches, and each
    round's ratio compares batches run back to back, so drift on a noisy machine cancels."""
    # A socket timeout a loaded machine does not hit: this measures sharing, not fallback.
    redis_state = {"backend": "redis", "url": redis_url, "namespace": "bench", "timeout_s": 1.0}
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
        waits_before = {name: _waits(client) for name, client in clients.items()}
        times: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        rounds = max(n // batch, 1)
        for _ in range(rounds):
            for name, client in clients.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                for _ in range(batch):
                    await client.chat.completions.create(model="default", messages=HI)
                cpu[name].append((time.process_time() - started_cpu) * 1000 / batch)
                times[name].append((time.perf_counter() - started) * 1000 / batch)
        rows = []
        for name, client in clients.items():
            ref = "memory + budget" if "budget" in name else "memory"
            ratios = [a / b for a, b in zip(times[name], times[ref], strict=True)]
            waits = _waits(client)
            before = waits_before[name]
            per = None if waits is None or before is None else (waits - before) / (rounds * batch)
            wall = statistics.median(times[name])
            rows.append((name, wall, statistics.median(ratios), statistics.mean(cpu[name]), per))
        return rows


def _waits(client: AsyncClient) -> int | None:
    backend = client._shared
    return None if backend is None else int(getattr(backend, "_waits", 0))


Call = Callable[[], Awaitable[Any]]


def _ways(port: int, timeout_s: float, pool: concurrent.futures.Executor) -> dict[str, Call]:
    """One Lua script call each way: sync inline, sync on a worker thread, redis.asyncio."""
    import redis
    import redis.asyncio as aredis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
    }
    script = "return redis.call('INCR', KEYS[1])"
    sync_script = redis.Redis(port=port, **options).register_script(script)
    async_script = aredis.Redis(port=port, **options).register_script(script)

    async def inline() -> Any:
        return sync_script(["k"])

    async def threaded() -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, lambda: sync_script(["k"]))

    async def native() -> Any:
        return await async_script(["k"])

    return {
        "sync client, inline": inline,
        "sync client, worker thread": threaded,
        "redis.asyncio": native,
    }


async def compare_clients(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Part 2: per-call cost on loopback, and loop stalls while the server is hung."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    cases = _ways(port, 2.0, pool)  # loopback: a loaded machine must not time out
    for call in cases.values():
        for _ in range(200):
            await call()
    per_call: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(20):
        for name, call in cases.items():
            started = time.perf_counter()
            for _ in range(100):
                await call()
            per_call[name].append((time.perf_counter() - started) * 1e4)  # us per call
    hung = _ways(port, 0.05, pool)
    for call in hung.values():
        await call()  # connected before the server stops
    proc.send_signal(signal.SIGSTOP)
    try:
        stalls = {name: await _loop_stalls(call) for name, call in hung.items()}
    finally:
        proc.send_signal(signal.SIGCONT)
    print(f"\n{'client':<28} {'us/call':>8} {'hung: longest stall':>20} {'all stalls':>11}")
    for name in cases:
        longest, total = stalls[name]
        median = statistics.median(per_call[name])
        print(f"{name:<28} {median:>8.0f} {longest:>17.0f} ms {total:>8.0f} ms")
    pool.shutdown()


async def _loop_stalls(call: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """(longest, total) ms the loop stopped while *call* ran 10 times on a hung server."""
    import redis

    lags: list[float] = []
    stop = asyncio.Event()

    async def tick() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - started - 0.001)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)
    for _ in range(10):
        with contextlib.suppress(redis.RedisError, OSError):
            await call()
    stop.set()
    await ticker
    return max(lags) * 1000, sum(x for x in lags if x > 0.005) * 1000


class _Count(logging.Handler):
    """Counts the backend's "unavailable" warnings (a run with any is not a clean one)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "unavailable" in record.getMessage()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=400, help="requests per case and round")
    parser.add_argument("--clients", action="store_true", help="also compare Redis clients")
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
            fallbacks = _Count()
            logging.getLogger("genrouter").addHandler(fallbacks)
            rows = asyncio.run(bench(args.n, f"redis://127.0.0.1:{port}/0"))
            if fallbacks.count:
                print(f"Redis timed out {fallbacks.count} times (local state meanwhile)")
            cpu_base = {name: cpu for name, _, _, cpu, _ in rows}
            print(
                f"{'backend':<16} {'ms/request':>10} {'ratio':>6} {'CPU ms/req':>10} "
                f"{'CPU ratio':>9} {'Redis waits/req':>15}"
            )
            for name, ms, ratio, cpu, waits in rows:
                ref = cpu_base["memory + budget" if "budget" in name else "memory"]
                shown = "-" if waits is None else f"{waits:.3f}"
                print(
                    f"{name:<16} {ms:>10.3f} {ratio:>5.2f}x {cpu:>10.3f} {cpu / ref:>8.2f}x "
                    f"{shown:>15}"
                )
            if args.clients:
                asyncio.run(compare_clients(port, proc))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
