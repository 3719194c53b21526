"""How much time genrouter adds to a chat completion, next to a raw HTTP call and the SDK.

Runs the fake server in a separate process (``python -m genrouter.testing serve``) so it does
not share the client's event loop, then times, one request after another on loopback:

(a) raw httpx2 POST + ``json.loads`` (the floor), and raw httpx2 streaming with ``json.loads``
    per SSE event (the streaming floor); also raw bytes + genrouter's SSE decoder, to compare
    ``aiter_lines`` with ``aiter_bytes``;
(b) ``openai.AsyncOpenAI(...).chat.completions.create`` (``max_retries=0``);
(c) genrouter's ``OpenAICompatibleProvider`` called directly;
(d) genrouter's ``AsyncClient`` (skipped with a note if it cannot be imported yet).

Then the same for blocking code, in its own interleaved run: raw ``httpx2.Client`` (the sync
floor), ``openai.OpenAI`` and genrouter's ``Client`` (which drives the async core from a
portal thread), plus both SDKs' ``chat.completions.stream()`` (openai-python's streamed-parse
helper, typed events; no target: context next to the SDK's).

Every streamed answer is 35 content chunks. Prints median and p99 per request and the ratio of
medians to the floor of the same kind. Targets: non-streaming ≤ 1.15×, streaming ≤ 1.2×.

Then the cold start: fresh processes, alternating, each timing import + client + first request
against the same server, genrouter next to the openai SDK (target: genrouter no slower).

    python bench/overhead.py [-n 300] [--warmup 30] [--chunks 35] [--cold 7] [--sync 100]
                             [--sync-alone]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx2

from genrouter.catalog import load_builtin_catalog
from genrouter.config import ProviderConfig
from genrouter.params import MessageParam
from genrouter.providers._sse import SSEDecoder
from genrouter.providers.base import ProviderCall
from genrouter.providers.openai_compat import OpenAICompatibleProvider
from genrouter.request import build_request

MESSAGES: list[MessageParam] = [
    {"role": "user", "content": "Say something of about thirty-five tokens."}
]
TARGETS = {"request": 1.15, "stream": 1.2}
SETTLE_S = 0.001


Runner = Callable[[], Awaitable[None]]


@dataclass
class Row:
    """One measured client: its label, kind (``request`` or ``stream``) and timings in ms."""

    label: str
    kind: str
    run: Runner
    floor: bool = False
    genrouter: bool = False
    # The second yardstick: the same raw calls over genrouter's own HTTP transport (the one
    # the client uses), so the ratio to it is genrouter's own work, transport aside.
    transport_floor: bool = False
    times_ms: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def p99(self) -> float:
        ordered = sorted(self.times_ms)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


async def measure(rows: list[Row], n: int, warmup: int) -> None:
    """Time every row *n* times after *warmup* untimed runs, taking turns.

    Rows take turns request by request, in a new random order each turn, so drift (CPU
    frequency, other processes' scheduling) and a row's after-effects (the SDK's heavy
    streams leave the caches cold for whoever comes next) spread over all rows evenly.
    """
    for row in rows:
        for _ in range(warmup):
            await row.run()
    shuffler = random.Random(0)
    order = list(rows)
    for _ in range(n):
        shuffler.shuffle(order)  # no row always follows the same neighbour
        for row in order:
            # Like timeit: no garbage collection inside a timed run, and a short settle between
            # runs, so one row's leftovers (garbage, a socket the SDK closed and the server is
            # still tearing down) are not billed to the next row.
            gc.collect(1)
            await asyncio.sleep(SETTLE_S)
            gc.disable()
            started = time.perf_counter_ns()
            try:
                await row.run()
            finally:
                elapsed = time.perf_counter_ns() - started
                gc.enable()
            row.times_ms.append(elapsed / 1e6)


def start_server(chunks: int) -> tuple[subprocess.Popen[str], str]:
    """Start the fake server process; return it and its OpenAI base URL."""
    command = [sys.executable, "-m", "genrouter.testing", "serve", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--reply-chunks", str(chunks)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        raise SystemExit(f"the fake server did not start (printed {url!r})")
    return process, url


def stop_server(process: subprocess.Popen[str]) -> None:
    """Stop a server started by :func:`start_server`."""
    process.terminate()
    process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()


def _floor_calls(http: httpx2.AsyncClient, url: str) -> tuple[Runner, Runner, Runner]:
    """The raw calls on *http*: POST + json.loads, and a stream read by lines and by bytes."""
    endpoint = url + "/chat/completions"
    headers = {"Authorization": "Bearer x", "Content-Type": "application/json"}
    plain = json.dumps({"model": "m", "messages": MESSAGES}).encode()
    streamed = json.dumps({"model": "m", "messages": MESSAGES, "stream": True}).encode()

    async def request() -> None:
        response = await http.post(endpoint, content=plain, headers=headers)
        json.loads(response.content)

    async def stream_lines() -> None:
        async with http.stream("POST", endpoint, content=streamed, headers=headers) as r:
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    data = line[6:]
                    # Read on to the end of the body (no break) so the connection is reused.
                    if data != "[DONE]":
                        json.loads(data)

    async def stream_bytes() -> None:
        decoder = SSEDecoder()
        async with http.stream("POST", endpoint, content=streamed, headers=headers) as r:
            async for raw in r.aiter_bytes():
                for _event, data in decoder.feed(raw):
                    if data != b"[DONE]":
                        json.loads(data)

    return request, stream_lines, stream_bytes


async def raw_rows(url: str, stack: AsyncExitStack) -> list[Row]:
    """(a) the floor: raw httpx2 and json.loads; then the same over genrouter's transport."""
    http = await stack.enter_async_context(httpx2.AsyncClient())
    request, stream_lines, stream_bytes = _floor_calls(http, url)
    # The second yardstick: genrouter's own work, its transport aside.
    own = await stack.enter_async_context(_own_transport_client())
    own_request, own_stream, _ = _floor_calls(own, url)
    label = "raw httpx2 over genrouter's transport"
    return [
        Row("raw httpx2 POST + json.loads", "request", request, floor=True),
        Row("raw httpx2 stream, aiter_lines + json.loads", "stream", stream_lines, floor=True),
        Row("raw httpx2 stream, aiter_bytes + SSEDecoder + json.loads", "stream", stream_bytes),
        Row(f"{label} + json.loads", "request", own_request, transport_floor=True),
        Row(f"{label}, stream", "stream", own_stream, transport_floor=True),
    ]


def _own_transport_client() -> httpx2.AsyncClient:
    """An httpx2 client over genrouter's HTTP transport, built as the client builds its pool."""
    from genrouter._transport_choice import transport_options

    limits = httpx2.Limits(max_connections=100, max_keepalive_connections=20)
    return httpx2.AsyncClient(limits=limits, **transport_options("genrouter", limits))


async def sdk_rows(url: str, stack: AsyncExitStack) -> list[Row]:
    """(b) the official openai SDK with its own object building."""
    import openai

    http = await stack.enter_async_context(httpx2.AsyncClient())
    client = openai.AsyncOpenAI(api_key="x", base_url=url, max_retries=0, http_client=http)
    messages: Any = MESSAGES

    async def request() -> None:
        await client.chat.completions.create(model="m", messages=messages)

    async def stream() -> None:
        response = await client.chat.completions.create(
            model="m", messages=messages, stream=True, stream_options={"include_usage": True}
        )
        async with response:  # closes the stream here, not later from a finalizer
            async for _chunk in response:
                pass

    return [
        Row("openai SDK create()", "request", request),
        Row("openai SDK create(stream=True)", "stream", stream),
    ]


async def provider_rows(url: str, stack: AsyncExitStack) -> list[Row]:
    """(c) genrouter's provider directly (request validation included)."""
    spec = load_builtin_catalog().merged({"fake/m": {"model": "m"}}).get("fake/m")
    config = ProviderConfig(type="openai_compatible", base_url=url, api_key_env="FAKE_KEY")
    # The transport the client's pool uses (genrouter's own), as in client_rows.
    http = await stack.enter_async_context(_own_transport_client())
    provider = OpenAICompatibleProvider("fake", config, http=http, env={"FAKE_KEY": "x"})

    def call(stream: bool) -> ProviderCall:
        request = build_request({"model": "fake/m", "messages": MESSAGES, "stream": stream})
        return ProviderCall(request, spec)

    async def request() -> None:
        await provider.complete(call(False))

    async def stream() -> None:
        async for _chunk in provider.stream(call(True)):
            pass

    return [
        Row("genrouter provider complete()", "request", request, genrouter=True),
        Row("genrouter provider stream()", "stream", stream, genrouter=True),
    ]


async def client_rows(url: str, stack: AsyncExitStack) -> list[Row]:
    """(d) genrouter's client, end to end (routing, hooks, accounting)."""
    try:
        from genrouter.client import AsyncClient
    except ImportError as exc:
        print(f"note: genrouter.client cannot be imported yet ({exc}); skipping (d)")
        return []
    config = {
        "providers": {
            "fake": {"type": "openai_compatible", "base_url": url, "api_key_env": "FAKE_KEY"}
        },
        "models": {"fake/m": {"model": "m"}},
    }
    client: Any = AsyncClient(config=config, env={"FAKE_KEY": "x"})
    stack.push_async_callback(client.aclose)

    async def request() -> None:
        await client.chat.completions.create(model="fake/m", messages=MESSAGES)

    async def stream() -> None:
        chat = await client.chat.completions.create(model="fake/m", messages=MESSAGES, stream=True)
        async with chat as chunks:
            async for _chunk in chunks:
                pass

    rows = [
        Row("genrouter AsyncClient create()", "request", request, genrouter=True),
        Row("genrouter AsyncClient stream", "stream", stream, genrouter=True),
    ]
    for row in rows:  # fail here, once, rather than in the middle of the timed loop
        await row.run()
    return rows


def print_table(rows: list[Row], n: int) -> bool:
    """Print the results; return whether every genrouter row met its target."""
    floors = {row.kind: row.median for row in rows if row.floor}
    own = {row.kind: row.median for row in rows if row.transport_floor}
    print(
        f"\n{n} requests each after warm-up; ratio = median / raw httpx2 floor of the same kind;"
        "\nown = median / the same raw calls over genrouter's transport (genrouter's own work)\n"
    )
    print(f"{'client':<58} {'kind':<8} {'median ms':>10} {'p99 ms':>9} {'ratio':>7} {'own':>6}")
    print("-" * 103)
    ok = True
    for row in rows:
        ratio = row.median / floors[row.kind]
        mine = f"{row.median / own[row.kind]:>5.2f}×" if row.kind in own else "     -"
        verdict = ""
        if row.genrouter:
            target = TARGETS[row.kind]
            verdict = f"  {'ok' if ratio <= target else 'OVER'} (target ≤ {target}×)"
            ok = ok and ratio <= target
        print(
            f"{row.label:<58} {row.kind:<8} {row.median:>10.3f} {row.p99:>9.3f} "
            f"{ratio:>6.2f}× {mine}{verdict}"
        )
    return ok


SyncRunner = Callable[[], None]


def sync_rows(url: str, stack: ExitStack) -> list[tuple[Row, SyncRunner]]:
    """Blocking clients: raw httpx2.Client (the floor), openai.OpenAI, genrouter.Client."""
    from genrouter import Client

    http = stack.enter_context(httpx2.Client())
    config = {
        "providers": {
            "fake": {"type": "openai_compatible", "base_url": url, "api_key_env": "FAKE_KEY"}
        },
        "models": {"fake/m": {"model": "m"}},
    }
    client: Any = stack.enter_context(Client(config=config, env={"FAKE_KEY": "x"}))

    def client_request() -> None:
        client.chat.completions.create(model="fake/m", messages=MESSAGES)

    def client_stream() -> None:
        with client.chat.completions.create(
            model="fake/m", messages=MESSAGES, stream=True
        ) as chunks:
            for _chunk in chunks:
                pass

    def client_events() -> None:
        with client.chat.completions.stream(model="fake/m", messages=MESSAGES) as events:
            for _event in events:
                pass

    async def unused() -> None:  # a Row needs an async runner; sync rows run through `sync`
        return None

    pairs = _sync_others(url, http, unused)
    pairs += [
        (Row("genrouter Client create()", "request", unused, genrouter=True), client_request),
        (Row("genrouter Client stream", "stream", unused, genrouter=True), client_stream),
        # openai-python's streamed-parse helper (typed events): no target, next to the SDK's.
        (Row("genrouter Client chat.completions.stream() events", "stream", unused), client_events),
    ]
    for _row, run_once in pairs:
        run_once()  # fail here, once, not in the middle of the timed loop
    return pairs


def sync_stream_floor(http: httpx2.Client, url: str) -> SyncRunner:
    """The blocking streaming floor: raw ``httpx2.Client`` stream, ``json.loads`` per event."""
    endpoint = url + "/chat/completions"
    headers = {"Authorization": "Bearer x", "Content-Type": "application/json"}
    streamed = json.dumps({"model": "m", "messages": MESSAGES, "stream": True}).encode()

    def raw_stream() -> None:
        with http.stream("POST", endpoint, content=streamed, headers=headers) as r:
            for line in r.iter_lines():
                if line.startswith("data: ") and line[6:] != "[DONE]":
                    json.loads(line[6:])

    return raw_stream


def _sync_others(url: str, http: httpx2.Client, unused: Runner) -> list[tuple[Row, SyncRunner]]:
    """The blocking floor (raw httpx2.Client) and openai.OpenAI."""
    import openai

    endpoint = url + "/chat/completions"
    headers = {"Authorization": "Bearer x", "Content-Type": "application/json"}
    plain = json.dumps({"model": "m", "messages": MESSAGES}).encode()
    sdk = openai.OpenAI(api_key="x", base_url=url, max_retries=0, http_client=http)
    messages: Any = MESSAGES

    def raw_request() -> None:
        json.loads(http.post(endpoint, content=plain, headers=headers).content)

    raw_stream = sync_stream_floor(http, url)

    def sdk_request() -> None:
        sdk.chat.completions.create(model="m", messages=messages)

    def sdk_stream() -> None:
        with sdk.chat.completions.create(
            model="m", messages=messages, stream=True, stream_options={"include_usage": True}
        ) as response:
            for _chunk in response:
                pass

    def sdk_events() -> None:
        with sdk.chat.completions.stream(model="m", messages=messages) as events:
            for _event in events:
                pass

    return [
        (Row("raw httpx2.Client POST + json.loads", "request", unused, floor=True), raw_request),
        (Row("raw httpx2.Client stream + json.loads", "stream", unused, floor=True), raw_stream),
        (Row("openai SDK OpenAI create()", "request", unused), sdk_request),
        (Row("openai SDK OpenAI create(stream=True)", "stream", unused), sdk_stream),
        (Row("openai SDK OpenAI chat.completions.stream() events", "stream", unused), sdk_events),
    ]


def measure_sync(pairs: list[tuple[Row, SyncRunner]], n: int, warmup: int) -> None:
    """:func:`measure` for blocking rows: warm-up, then turns in a new random order each."""
    for _row, run_once in pairs:
        for _ in range(warmup):
            run_once()
    shuffler = random.Random(1)
    order = list(pairs)
    for _ in range(n):
        shuffler.shuffle(order)
        for row, run_once in order:
            gc.collect(1)
            time.sleep(SETTLE_S)
            gc.disable()
            started = time.perf_counter_ns()
            try:
                run_once()
            finally:
                elapsed = time.perf_counter_ns() - started
                gc.enable()
            row.times_ms.append(elapsed / 1e6)


def sync_section(url: str, n: int, warmup: int, *, alone: bool = False) -> bool:
    """Measure and print the blocking clients; whether genrouter's met its targets.

    *alone*: only the floor and genrouter's rows, with no openai SDK call between them (its
    calls, several ms each, leave the caches cold for the next row: that costs a two-thread
    client more than the floor).
    """
    with ExitStack() as stack:
        pairs = sync_rows(url, stack)
        if alone:
            pairs = [(row, run) for row, run in pairs if row.floor or "genrouter" in row.label]
        measure_sync(pairs, n, warmup)
    if alone:
        print("\nblocking clients (sync), the floor and genrouter alone, interleaved:")
    else:
        print("\nblocking clients (sync), in their own interleaved run:")
    return print_table([row for row, _ in pairs], n)


# Each runs in a fresh interpreter: from before the import to the first answer, in ms.
COLD_GENROUTER = """
import time
t0 = time.perf_counter()
import asyncio
from genrouter import AsyncClient
async def main():
    config = {"providers": {"fake": {"type": "openai_compatible", "base_url": URL}},
              "models": {"fake/m": {"model": "m"}}}
    client = AsyncClient(config, env={})
    hi = [{"role": "user", "content": "hi"}]
    await client.chat.completions.create(model="fake/m", messages=hi)
    await client.close()
asyncio.run(main())
print((time.perf_counter() - t0) * 1000)
"""
COLD_SDK = """
import time
t0 = time.perf_counter()
import asyncio
from openai import AsyncOpenAI
async def main():
    client = AsyncOpenAI(api_key="x", base_url=URL, max_retries=0)
    hi = [{"role": "user", "content": "hi"}]
    await client.chat.completions.create(model="m", messages=hi)
    await client.close()
asyncio.run(main())
print((time.perf_counter() - t0) * 1000)
"""


def cold_start(url: str, runs: int) -> bool:
    """Fresh processes, alternating genrouter and the SDK; print medians; genrouter ≤ SDK?"""
    times: dict[str, list[float]] = {"genrouter AsyncClient": [], "openai SDK AsyncOpenAI": []}
    scripts = {"genrouter AsyncClient": COLD_GENROUTER, "openai SDK AsyncOpenAI": COLD_SDK}
    for _ in range(runs):
        for label, script in scripts.items():
            code = f"URL = {url!r}\n" + script
            done = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            )
            times[label].append(float(done.stdout.split()[-1]))
    print(f"\ncold start: import + client + first request, fresh process, {runs} runs each\n")
    medians = {label: statistics.median(values) for label, values in times.items()}
    for label, median in medians.items():
        print(f"{label:<58} {'cold':<8} {median:>10.1f} ms (min {min(times[label]):.1f})")
    ratio = medians["genrouter AsyncClient"] / medians["openai SDK AsyncOpenAI"]
    print(f"genrouter / SDK: {ratio:.2f}× {'ok' if ratio <= 1.0 else 'OVER'} (target ≤ 1×)")
    return ratio <= 1.0


async def run(
    n: int, warmup: int, chunks: int, cold: int = 0, sync: int = 0, sync_alone: bool = False
) -> bool:
    """Start the server, measure every row, print the table."""
    process, url = start_server(chunks)
    try:
        async with AsyncExitStack() as stack:
            rows = await raw_rows(url, stack)
            rows += await sdk_rows(url, stack)
            rows += await provider_rows(url, stack)
            try:
                rows += await client_rows(url, stack)
            except Exception as exc:  # the client is young; report it, keep the other numbers
                print(
                    f"note: genrouter AsyncClient failed, skipping (d): {type(exc).__name__}: {exc}"
                )
            await measure(rows, n, warmup)
        ok = print_table(rows, n)
        if sync:
            # A blocking client cannot run inside this event loop: a thread of its own.
            ok = await asyncio.to_thread(sync_section, url, sync, min(warmup, sync)) and ok
            if sync_alone:  # context, not the verdict: the run above is the one that counts
                await asyncio.to_thread(sync_section, url, sync, min(warmup, sync), alone=True)
        if cold:
            ok = cold_start(url, cold) and ok
        return ok
    finally:
        stop_server(process)


def main() -> int:
    """Command-line entry point; exit status 1 when a genrouter row misses its target."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=300, help="timed requests per row")
    parser.add_argument("--warmup", type=int, default=30, help="untimed requests first")
    parser.add_argument("--chunks", type=int, default=35, help="content chunks per answer")
    parser.add_argument("--cold", type=int, default=7, help="cold-start processes each (0: skip)")
    parser.add_argument("--sync", type=int, default=100, help="timed blocking requests (0: skip)")
    parser.add_argument(
        "--sync-alone",
        action="store_true",
        help="then the sync floor and genrouter again, without the SDK's rows between them",
    )
    args = parser.parse_args()
    done = asyncio.run(run(args.n, args.warmup, args.chunks, args.cold, args.sync, args.sync_alone))
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
