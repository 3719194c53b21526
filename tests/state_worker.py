"""One worker process of the shared-state tests (``python -m tests.state_worker SPEC``).

SPEC is JSON: ``config`` (a genrouter config mapping), ``requests``, ``gap_s`` and
optionally ``warmup`` (a model to call once first, so imports and the first plan are done
before the clock starts). The worker prints ``ready`` once its client is built and warmed
up, and starts when a line arrives on stdin, so that every worker starts together however
slow the machine is. Then it prints one JSON line: per request its start time, the attempts
(model, outcome), its cost and notes, or the error type that ended it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from genrouter import AsyncClient
from genrouter.errors import GenRouterError


async def run(spec: dict[str, Any]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    async with AsyncClient(spec["config"], env={}) as client:
        if spec.get("warmup"):
            await client.chat.completions.create(
                model=spec["warmup"], messages=[{"role": "user", "content": "hi"}], max_tokens=8
            )
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        for _ in range(spec["requests"]):
            started = time.time()
            try:
                reply = await client.chat.completions.create(
                    model="default", messages=[{"role": "user", "content": "hi"}], max_tokens=8
                )
            except GenRouterError as exc:
                results.append({"at": started, "error": type(exc).__name__})
            else:
                route = reply.route
                assert route is not None
                attempts = [[a.model, a.outcome] for a in route.attempts]
                results.append(
                    {
                        "at": started,
                        "attempts": attempts,
                        "cost": route.cost_usd,
                        "notes": route.notes,
                    }
                )
            await asyncio.sleep(spec["gap_s"])
    return results


def main() -> None:
    spec = json.loads(sys.argv[1])
    print(json.dumps(asyncio.run(run(spec))))


if __name__ == "__main__":
    main()
