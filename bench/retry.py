"""What retrying on tenacity costs, on the success path and for one retry.

In process (no sockets, so the retry machinery is not lost in loopback noise), taking turns
request by request:

1. ``AsyncClient.chat.completions.create`` whose first try succeeds: tenacity is never entered
   (as shipped), next to the same request with an ``AsyncRetrying`` around the try, which is
   what entering tenacity up front would add to every request.
2. A request whose first try fails with a 503 and whose second succeeds (backoff 0): the
   retries under tenacity (as shipped) next to the hand-written loop genrouter had before,
   swapped in for ``Execution._retry``.

Prints medians and p90 in microseconds and the ratio of medians within each pair.

    python bench/retry.py [-n 2000] [--warmup 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import tenacity

from genrouter.client import AsyncClient
from genrouter.errors import ServerError
from genrouter.params import MessageParam
from genrouter.providers.base import ProviderCall
from genrouter.routing.executor import Execution, _Success
from genrouter.types import ChatCompletion, ChatCompletionChunk

MESSAGES: list[MessageParam] = [{"role": "user", "content": "Say hello"}]
ANSWER = ChatCompletion.model_validate(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hello"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
)


class BenchProvider:
    """Answers at once; with ``fail_first`` set, every odd call raises a 503 first."""

    name = "p"
    base_url = "https://p.example.invalid/v1"
    is_remote = True

    def __init__(self) -> None:
        self.fail_first = False
        self._calls = 0

    def has_credentials(self) -> bool:
        return True

    async def complete(self, call: ProviderCall) -> ChatCompletion:
        self._calls += 1
        if self.fail_first and self._calls % 2 == 1:
            raise ServerError("boom", status_code=503)
        return ANSWER

    async def aclose(self) -> None:
        return None

    async def stream(self, call: ProviderCall) -> AsyncIterator[ChatCompletionChunk]:
        raise NotImplementedError
        yield  # pragma: no cover


async def _retry_by_hand(
    self: Execution,
    attempt: Callable[[int], Awaitable[_Success[Any] | float | None]],
    delay: float,
) -> _Success[Any] | None:
    """The loop genrouter wrote itself before tenacity (same semantics as ``_retry``)."""
    for number in range(2, self.route.retry.attempts + 1):
        await self.env.sleep(delay)
        outcome = await attempt(number)
        if outcome is None or isinstance(outcome, _Success):
            return outcome
        delay = outcome
    return None


def _client(provider: BenchProvider) -> AsyncClient:
    config = {
        "providers": {"p": {"type": "custom"}},
        "models": {"p/m": {}},
        "routes": {
            "default": {
                "candidates": ["p/m"],
                "retry": {"attempts": 3, "backoff": {"initial_ms": 0, "jitter": False}},
            }
        },
    }
    return AsyncClient(config, providers={"p": provider}, env={}, seed=1, model_cache=False)


def _summary(label: str, samples: list[float]) -> tuple[str, float, float]:
    ordered = sorted(samples)
    return label, statistics.median(samples), ordered[int(0.9 * (len(ordered) - 1))]


async def run(n: int, warmup: int) -> None:
    plain, failing = BenchProvider(), BenchProvider()
    failing.fail_first = True
    ok_client, retry_client = _client(plain), _client(failing)
    shipped = Execution._retry

    async def success() -> None:
        await ok_client.chat.completions.create(model="default", messages=MESSAGES)

    async def success_in_tenacity() -> None:
        retrying = tenacity.AsyncRetrying(
            sleep=asyncio.sleep,
            retry=tenacity.retry_if_result(lambda result: isinstance(result, float)),
            stop=tenacity.stop_after_attempt(3),
            reraise=True,
        )
        await retrying(success)

    async def one_retry_tenacity() -> None:
        Execution._retry = shipped  # type: ignore[method-assign]
        await retry_client.chat.completions.create(model="default", messages=MESSAGES)

    async def one_retry_by_hand() -> None:
        Execution._retry = _retry_by_hand  # type: ignore[method-assign]
        await retry_client.chat.completions.create(model="default", messages=MESSAGES)

    pairs: list[tuple[tuple[str, Callable[[], Awaitable[None]]], ...]] = [
        (
            ("success: tenacity not entered (shipped)", success),
            ("success: AsyncRetrying around the try", success_in_tenacity),
        ),
        (
            ("one retry: under tenacity (shipped)", one_retry_tenacity),
            ("one retry: hand-written loop (before)", one_retry_by_hand),
        ),
    ]
    times: dict[str, list[float]] = {label: [] for pair in pairs for label, _ in pair}
    try:
        for index in range(warmup + n):
            for pair in pairs:
                order = pair if index % 2 == 0 else pair[::-1]  # neither always goes first
                for label, fn in order:
                    started = time.perf_counter_ns()
                    await fn()
                    if index >= warmup:
                        times[label].append((time.perf_counter_ns() - started) / 1000)
    finally:
        Execution._retry = shipped  # type: ignore[method-assign]
        await ok_client.aclose()
        await retry_client.aclose()

    print(f"{'row':42s} {'median µs':>10s} {'p90 µs':>9s} {'ratio':>7s}")
    for (first, _), (second, _) in pairs:
        base = _summary(first, times[first])
        other = _summary(second, times[second])
        for label, median, p90 in (base, other):
            print(f"{label:42s} {median:10.1f} {p90:9.1f} {median / base[1]:7.3f}")
        print(f"{'':42s} difference of medians: {other[1] - base[1]:+.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.n, args.warmup))


if __name__ == "__main__":
    main()
