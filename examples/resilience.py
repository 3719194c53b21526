"""Time limits, Retry-After cooldowns, per-host reachability and stream integrity, on loopback.

Two fake OpenAI-compatible servers stand in for two providers. Run it:
``python examples/resilience.py``. It prints, for each scenario, which model answered and why.
"""

from __future__ import annotations

import asyncio

from genrouter import AsyncClient, MessageParam, StreamInterruptedError
from genrouter.testing import FakeLLMServer, Reply

HELLO: list[MessageParam] = [{"role": "user", "content": "Say hello"}]


def config(primary: str, spare: str) -> dict[str, object]:
    return {
        "providers": {
            # The provider's own timeout_s bounds each non-streamed attempt (and a stream's
            # wait for its first token); a route may set attempt_timeout_s instead.
            "primary": {"type": "openai_compatible", "base_url": primary, "timeout_s": 1.0},
            "spare": {"type": "openai_compatible", "base_url": spare},
        },
        "models": {"primary/m": {}, "spare/m": {}},
        "routes": {
            "default": {
                "candidates": ["primary/m", "spare/m"],
                "retry": {"attempts": 2, "max_retry_after_s": 5},
                "stream_idle_timeout_s": 1.0,
                "resume": True,
            }
        },
    }


async def main() -> None:
    with FakeLLMServer() as primary, FakeLLMServer() as spare:
        async with AsyncClient(config(primary.openai_base_url, spare.openai_base_url)) as client:
            # 1. A hung attempt: the per-attempt timeout moves on to the spare.
            primary.enqueue(Reply.text("too late", delay_headers_s=5))
            spare.enqueue(Reply.text("spare answered"))
            resp = await client.chat.completions.create(model="default", messages=HELLO)
            assert resp.route is not None
            print("hung:", resp.route.model, [a.error_type for a in resp.route.attempts])

            # 2. Retry-After: 60 is routing, not a sleep: move on now, cool the model down.
            primary.enqueue(Reply.error(429, headers={"Retry-After": "60"}))
            resp = await client.chat.completions.create(model="default", messages=HELLO)
            assert resp.route is not None
            print("rate limited:", resp.route.model)
            decision = client.route(model="default", messages=HELLO)
            print("next decision:", decision.candidates[0].excluded_because)

            # 3. A stream that ends with a bare [DONE] and no finish_reason is an interruption;
            #    with resume=True the spare continues from the delivered text.
            client.health.cooldowns.clear()
            primary.enqueue(Reply.text("The capital of Japan is", omit_finish_reason=True))
            spare.enqueue(Reply.text(" Tokyo."))
            stream = await client.chat.completions.create(
                model="default", messages=HELLO, stream=True
            )
            try:
                pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
                text = "".join(pieces)
            except StreamInterruptedError as exc:
                text = f"interrupted after {exc.partial_text!r}"
            assert stream.route is not None
            print("resumed:", text, [a.outcome for a in stream.route.attempts])


if __name__ == "__main__":
    asyncio.run(main())
