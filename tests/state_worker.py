"""One worker process of the shared-state tests (``python -m tests.state_worker SPEC``).

SPEC is JSON: ``config`` (a genrouter config mapping), ``start_at`` (wall-clock time to
begin, so every worker starts together), ``requests`` and ``gap_s``. It prints one JSON
line: per request its start time, the attempts (model, outcome), its cost and notes, or
the error type that ended it.
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
        await asyncio.sleep(max(spec["start_at"] - time.time(), 0.0))
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
