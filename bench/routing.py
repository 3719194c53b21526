"""What routing costs: the pure decision, and a 3-candidate route next to a single model.

1. ``decide()`` for 1, 10 and 100 candidates (facts prepared, token counting excluded), and the
   whole dry run ``client.route(...)`` (token counting and fact gathering included) for 3.
2. Against the fake server in its own process: one request through a route of three candidates
   (the first answers) next to the same request naming one model, non-streaming and streaming,
   taking turns request by request. The ratio is the price of ranking and bookkeeping.

    python bench/routing.py [-n 300] [--warmup 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

from overhead import MESSAGES, Row, measure, start_server, stop_server

from genrouter.catalog import ModelSpec
from genrouter.client import AsyncClient
from genrouter.config import RouteConfig
from genrouter.request import build_request
from genrouter.routing.decision import CandidateFacts, decide


def _facts(count: int) -> tuple[RouteConfig, list[CandidateFacts]]:
    facts = []
    for i in range(count):
        spec = ModelSpec(
            id=f"p/m{i}",
            provider="p",
            model=f"m{i}",
            input_price=0.1 + i * 0.01,
            output_price=0.3 + i * 0.02,
            prior_ttft_ms=200 + (i * 37) % 900,
            context_window=32_000,
        )
        facts.append(CandidateFacts(spec, prompt_tokens=120, prompt_tokens_method="estimate"))
    route = RouteConfig(candidates=[f.spec.id for f in facts], objective="balanced")
    return route, facts


def time_decisions(repeat: int) -> list[tuple[str, float, float]]:
    """Median and p99 microseconds of ``decide()`` per candidate count."""
    needs = build_request({"model": "x", "messages": MESSAGES}).needs()
    results = []
    for count in (1, 10, 100):
        route, facts = _facts(count)
        for _ in range(500):  # warm up: caches, branch history, the allocator
            decide(route_name="r", route=route, needs=needs, output_limit=200, candidates=facts)
        samples = []
        for _ in range(repeat):
            started = time.perf_counter_ns()
            decide(route_name="r", route=route, needs=needs, output_limit=200, candidates=facts)
            samples.append((time.perf_counter_ns() - started) / 1000)
        ordered = sorted(samples)
        results.append(
            (
                f"decide(), {count} candidates",
                statistics.median(samples),
                ordered[int(0.99 * len(ordered))],
            )
        )
    return results


def time_dry_run(url: str, repeat: int) -> tuple[str, float, float]:
    client = AsyncClient(_config(url), env={"FAKE_KEY": "x"})
    samples = []
    for _ in range(repeat):
        started = time.perf_counter_ns()
        client.route(model="three", messages=MESSAGES)
        samples.append((time.perf_counter_ns() - started) / 1000)
    ordered = sorted(samples)
    return (
        "client.route() dry run, 3 candidates (tokens counted)",
        statistics.median(samples),
        ordered[int(0.99 * len(ordered))],
    )


def _config(url: str) -> dict[str, Any]:
    fake = {"type": "openai_compatible", "base_url": url, "api_key_env": "FAKE_KEY"}
    return {
        "providers": {"fake": fake},
        "models": {
            "fake/a": {"model": "a", "input_price": 0.1, "output_price": 0.2},
            "fake/b": {"model": "b", "input_price": 0.5, "output_price": 1.0},
            "fake/c": {"model": "c", "input_price": 1.0, "output_price": 2.0},
        },
        "routes": {
            "three": {"candidates": ["fake/c", "fake/b", "fake/a"], "objective": "cost"},
        },
    }


async def route_rows(url: str, stack: AsyncExitStack) -> list[Row]:
    client = AsyncClient(_config(url), env={"FAKE_KEY": "x"})
    stack.push_async_callback(client.aclose)

    def request(model: str) -> Any:
        async def run() -> None:
            await client.chat.completions.create(model=model, messages=MESSAGES)

        return run

    def stream(model: str) -> Any:
        async def run() -> None:
            chat = await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
            async with chat:
                async for _ in chat:
                    pass

        return run

    rows = [
        Row("one model (fake/a)", "request", request("fake/a"), floor=True),
        Row("route of 3 candidates, cost-ranked", "request", request("three")),
        Row("one model (fake/a), streamed", "stream", stream("fake/a"), floor=True),
        Row("route of 3 candidates, streamed", "stream", stream("three")),
    ]
    for row in rows:
        await row.run()
    return rows


async def run(n: int, warmup: int) -> None:
    print("Pure decision (no I/O, no token counting):\n")
    print(f"{'what':<58} {'median µs':>10} {'p99 µs':>9}")
    for label, median, p99 in time_decisions(5000):
        print(f"{label:<58} {median:>10.1f} {p99:>9.1f}")
    process, url = start_server(35)
    try:
        label, median, p99 = time_dry_run(url, 2000)
        print(f"{label:<58} {median:>10.1f} {p99:>9.1f}")
        async with AsyncExitStack() as stack:
            rows = await route_rows(url, stack)
            await measure(rows, n, warmup)
        floors = {row.kind: row.median for row in rows if row.floor}
        print(f"\nAgainst the fake server, {n} requests each; ratio = median / one model's\n")
        print(f"{'client':<58} {'median ms':>10} {'p99 ms':>9} {'ratio':>7}")
        for row in rows:
            print(
                f"{row.label:<58} {row.median:>10.3f} {row.p99:>9.3f} "
                f"{row.median / floors[row.kind]:>6.3f}×"
            )
    finally:
        stop_server(process)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=300, help="timed requests per row")
    parser.add_argument("--warmup", type=int, default=30, help="untimed requests first")
    args = parser.parse_args()
    asyncio.run(run(args.n, args.warmup))
    return 0


if __name__ == "__main__":
    sys.exit(main())
