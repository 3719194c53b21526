"""Why the sync ``Client``'s stream ratio in bench/overhead.py moves with what runs between calls.

bench/overhead.py times each blocking row right after some other row's call (the openai SDK's
5 ms streams among them). This script runs three streamed rows under four "between" conditions
in one run: the conditions take turns in blocks of ``--block`` turns (what moves the ratio
builds up over many calls: interleaving the conditions call by call averages it away), and in
each turn the rows run in a new random order:

- ``floor``: raw ``httpx2.Client`` stream + ``json.loads`` per event (overhead.py's sync floor);
- ``Client``: genrouter's ``Client`` streaming, exactly as overhead.py times it;
- ``one hand-off``: a single portal call in which genrouter's ``AsyncClient`` reads the whole
  stream on the portal's thread: the least any portal-based sync client can cost (one hand-off,
  no per-chunk crossing), so ``Client`` minus this row is the sync layer's own per-stream cost.

Conditions, run in the calling thread before each timed call (then a 1 ms settle, as overhead.py):
``none`` (nothing), ``sleep`` (5 ms asleep), ``spin`` (5 ms of Python allocation work) and
``sdk`` (one openai-python sync stream of the same answer).

With ``--one-core`` the client process (its calling thread and the portal thread the ``Client``
starts) is pinned to one CPU, the server left free: it tells whether what the busy conditions
cost the ``Client`` is the portal thread running on another core than the caller.

    python bench/sync_between.py [-n 200] [--warmup 20] [--chunks 35] [--block 50] [--one-core]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import MESSAGES, SETTLE_S, start_server, stop_server, sync_stream_floor

Run = Callable[[], None]
BETWEEN_S = 0.005


def rows(url: str, client: Any, http: httpx2.Client) -> dict[str, Run]:
    """The three timed rows, each reading one 35-chunk streamed answer to its end."""
    floor = sync_stream_floor(http, url)
    inner = client.async_client

    def sync_client() -> None:
        with client.chat.completions.create(
            model="fake/m", messages=MESSAGES, stream=True
        ) as chunks:
            for _chunk in chunks:
                pass

    async def read_on_portal() -> None:
        stream = await inner.chat.completions.create(model="fake/m", messages=MESSAGES, stream=True)
        async with stream:
            async for _chunk in stream:
                pass

    def one_hand_off() -> None:
        client._portal.call(read_on_portal)

    return {"floor": floor, "Client": sync_client, "one hand-off": one_hand_off}


def conditions(url: str, http: httpx2.Client) -> dict[str, Run]:
    """What runs in the calling thread before each timed call."""
    import openai

    sdk = openai.OpenAI(api_key="x", base_url=url, max_retries=0, http_client=http)
    messages: Any = MESSAGES

    def none() -> None:
        return None

    def sleep() -> None:
        time.sleep(BETWEEN_S)

    def spin() -> None:
        until = time.perf_counter() + BETWEEN_S
        junk: dict[int, object] = {}
        while time.perf_counter() < until:
            junk[len(junk) % 4096] = object()

    def sdk_stream() -> None:
        with sdk.chat.completions.create(model="m", messages=messages, stream=True) as response:
            for _chunk in response:
                pass

    return {"none": none, "sleep": sleep, "spin": spin, "sdk": sdk_stream}


def measure(
    timed: dict[str, Run], before: dict[str, Run], n: int, warmup: int, block: int
) -> dict[tuple[str, str], list[float]]:
    """Per (condition, row): *n* timings in ms. Conditions take turns in blocks of *block*
    turns (the effect builds up over many calls, not one); in each turn of a block every
    row runs once, in a new random order, each after that block's condition."""
    for run in timed.values():
        for _ in range(warmup):
            run()
    times: dict[tuple[str, str], list[float]] = {(c, r): [] for c in before for r in timed}
    order = list(timed)
    shuffler = random.Random(1)
    for _ in range(max(1, n // block)):
        for condition, run_before in before.items():
            for _ in range(block):
                shuffler.shuffle(order)
                for row in order:
                    run_before()
                    gc.collect(1)
                    time.sleep(SETTLE_S)
                    gc.disable()
                    started = time.perf_counter_ns()
                    try:
                        timed[row]()
                    finally:
                        elapsed = time.perf_counter_ns() - started
                        gc.enable()
                    times[condition, row].append(elapsed / 1e6)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--chunks", type=int, default=35)
    parser.add_argument("--block", type=int, default=50, help="turns per condition in a row")
    parser.add_argument(
        "--one-core",
        action="store_true",
        help="pin this process (its calling and portal threads) to one CPU; the server stays free",
    )
    args = parser.parse_args()

    from genrouter import Client

    process, url = start_server(args.chunks)
    if args.one_core:  # after the server started, so only this process's threads are pinned
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    config = {
        "providers": {
            "fake": {"type": "openai_compatible", "base_url": url, "api_key_env": "FAKE_KEY"}
        },
        "models": {"fake/m": {"model": "m"}},
    }
    try:
        with httpx2.Client() as http, Client(config=config, env={"FAKE_KEY": "x"}) as client:
            timed = rows(url, client, http)
            times = measure(timed, conditions(url, http), args.n, args.warmup, args.block)
    finally:
        stop_server(process)

    print(f"\n{args.n} streams per cell, medians in ms; ratio = median / floor's in that row\n")
    head = f"{'between':<8} {'floor':>7} {'Client':>14} {'one hand-off':>14}"
    print(f"{head} {'Client - hand-off':>18}")
    for condition in ("none", "sleep", "spin", "sdk"):
        med = {row: statistics.median(times[condition, row]) for row in timed}
        floor = med["floor"]
        print(
            f"{condition:<8} {floor:>7.3f} "
            f"{med['Client']:>7.3f} {med['Client'] / floor:>5.2f}× "
            f"{med['one hand-off']:>7.3f} {med['one hand-off'] / floor:>5.2f}× "
            f"{(med['Client'] - med['one hand-off']) * 1000:>14.0f} µs"
        )


if __name__ == "__main__":
    main()
