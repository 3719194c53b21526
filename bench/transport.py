"""What the HTTP transport under ``httpx2.AsyncClient`` costs per request and per stream.

Against ``bench/_gateway_upstream.py`` on loopback (a raw-Protocol fake upstream that answers
from prepared bytes), taking turns call by call, one process, one run per event loop:

1. ``httpx2``: ``httpx2.AsyncClient`` with its default transport (httpcore2 + h11 + anyio);
2. ``genrouter``: the same client over genrouter's transport (genrouter/_transport.py);
3. ``floor``: an asyncio Protocol + httptools' parser on one kept-alive connection, no client
   layer at all: the round trip itself.

A request is a POST + ``json.loads`` of the answer; a stream is a POST whose SSE body (37
events: role, 35 content chunks, finish, ``[DONE]``) is read to its end. Prints the median
and p90 latency, the mean, and the mean CPU time (user + system, this thread) per call, and
each median's ratio to the floor's.

    python bench/transport.py [-n 400] [--warmup 50] [--loops asyncio,uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import httptools
import httpx2

from genrouter._transport_choice import transport_options

UPSTREAM = Path(__file__).with_name("_gateway_upstream.py")
CHUNKS = 35
REQUEST = json.dumps({"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]})
STREAM = json.dumps(
    {"model": "bench-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
)
LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)


class FloorConnection(asyncio.Protocol):
    """One kept-alive connection, one request at a time: the least an HTTP client can do."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        self.done: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body, self.body = b"".join(self.body), []
        assert self.done is not None
        self.done.set_result(body)

    async def post(self, path: bytes, body: bytes) -> bytes:
        assert self.transport is not None
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(
            b"POST %b HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%b" % (path, len(body), body)
        )
        return await self.done


async def measure(base_url: str, n: int, warmup: int) -> dict[str, dict[str, float]]:
    url = base_url + "/chat/completions"
    host, port = base_url.split("//", 1)[1].split("/", 1)[0].split(":")
    headers = {"content-type": "application/json"}
    default = httpx2.AsyncClient(limits=LIMITS, trust_env=True)
    ours = httpx2.AsyncClient(
        limits=LIMITS, trust_env=True, **transport_options("genrouter", LIMITS)
    )
    assert ours._transport is not default._transport and ours._transport.__class__.__module__ == (
        "genrouter._transport"
    ), "genrouter's transport did not load"
    loop = asyncio.get_running_loop()
    _, floor = await loop.create_connection(FloorConnection, host, int(port))
    path = b"/v1/chat/completions"

    def request(client: httpx2.AsyncClient) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            response = await client.post(url, content=REQUEST, headers=headers)
            json.loads(response.content)

        return call

    def stream(client: httpx2.AsyncClient) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            async with client.stream("POST", url, content=STREAM, headers=headers) as response:
                async for _ in response.aiter_bytes():
                    pass

        return call

    async def floor_request() -> None:
        json.loads(await floor.post(path, REQUEST.encode()))

    async def floor_stream() -> None:
        body = await floor.post(path, STREAM.encode())
        assert body.endswith(b"data: [DONE]\n\n")

    calls: dict[str, Callable[[], Awaitable[None]]] = {
        "request httpx2": request(default),
        "request genrouter": request(ours),
        "request floor": floor_request,
        "stream httpx2": stream(default),
        "stream genrouter": stream(ours),
        "stream floor": floor_stream,
    }
    for call in calls.values():
        for _ in range(warmup):
            await call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, float] = dict.fromkeys(calls, 0.0)
    names = list(calls)
    for _ in range(n):
        random.shuffle(names)
        for name in names:
            r0 = resource.getrusage(resource.RUSAGE_THREAD)
            t0 = time.perf_counter()
            await calls[name]()
            t1 = time.perf_counter()
            r1 = resource.getrusage(resource.RUSAGE_THREAD)
            times[name].append(t1 - t0)
            cpu[name] += (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    await default.aclose()
    await ours.aclose()
    assert floor.transport is not None
    floor.transport.close()
    return {
        name: {
            "p50_us": statistics.median(values) * 1e6,
            "p90_us": statistics.quantiles(values, n=10)[-1] * 1e6,
            "mean_us": statistics.fmean(values) * 1e6,
            "cpu_us": cpu[name] / len(values) * 1e6,
        }
        for name, values in times.items()
    }


def run_on(loop_name: str, coro: Any) -> dict[str, dict[str, float]]:
    if loop_name == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=400, help="calls of each kind (default 400)")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--loops", default="asyncio,uvloop")
    args = parser.parse_args()
    upstream = subprocess.Popen(
        [sys.executable, str(UPSTREAM), "--port", "0", "--chunks", str(CHUNKS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert upstream.stdout is not None
        base_url = upstream.stdout.readline().strip()
        for loop_name in args.loops.split(","):
            results = run_on(loop_name, measure(base_url, args.n, args.warmup))
            print(f"\n{loop_name}: {args.n} calls of each kind, interleaved")
            print(
                f"{'':20s} {'p50 µs':>8s} {'p90 µs':>8s} {'mean µs':>8s} {'CPU µs':>8s}"
                f" {'p50 / floor':>12s}"
            )
            for name, row in results.items():
                floor = results[name.split()[0] + " floor"]["p50_us"]
                print(
                    f"{name:20s} {row['p50_us']:8.0f} {row['p90_us']:8.0f} {row['mean_us']:8.0f}"
                    f" {row['cpu_us']:8.0f}"
                    f" {row['p50_us'] / floor:11.2f}x"
                )
    finally:
        upstream.kill()
        upstream.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
