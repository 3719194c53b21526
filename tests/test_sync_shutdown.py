"""Concurrency and shutdown of the sync portal and the shared pool (issue 9, item 8)."""

from __future__ import annotations

import _thread
import asyncio
import gc
import threading
import time
from typing import Any

import pytest

from genrouter import AsyncClient, Client, GenRouterError, MessageParam
from genrouter.testing import FakeLLMServer, Reply

HELLO: list[MessageParam] = [{"role": "user", "content": "hi"}]


def config(server: FakeLLMServer) -> dict[str, Any]:
    return {
        "providers": {"p": {"type": "openai_compatible", "base_url": server.openai_base_url}},
        "models": {"p/m": {}},
        "routes": {"default": {"candidates": ["p/m"], "retry": {"attempts": 1}}},
    }


def portal_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "genrouter-portal")


def test_close_while_threads_are_mid_call_leaves_none_blocked() -> None:
    with FakeLLMServer(
        default_reply=Reply(chunks=["a ", "b ", "c"], delay_between_chunks_s=0.3)
    ) as server:
        client = Client(config(server), env={})
        outcomes: list[str] = []
        lock = threading.Lock()

        def work(streamed: bool) -> None:
            try:
                if streamed:
                    with client.chat.completions.create(
                        model="default", messages=HELLO, stream=True
                    ) as stream:
                        text = "".join(
                            c.choices[0].delta.content or "" for c in stream if c.choices
                        )
                    result = "complete" if text == "a b c" else f"short:{text!r}"
                else:
                    client.chat.completions.create(model="default", messages=HELLO)
                    result = "complete"
            except GenRouterError:
                result = "raised"
            with lock:
                outcomes.append(result)

        threads = [threading.Thread(target=work, args=(i % 2 == 0,)) for i in range(24)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        client.close()
        for thread in threads:
            thread.join(timeout=10)
        assert not any(t.is_alive() for t in threads), "a caller stayed blocked after close()"
    assert len(outcomes) == 24
    assert all(o in ("complete", "raised") for o in outcomes), outcomes  # never cut silently


def test_a_dropped_sync_client_frees_its_threads() -> None:
    with FakeLLMServer() as server:
        before = portal_threads()
        client = Client(config(server), env={})
        client.chat.completions.create(model="default", messages=HELLO)
        assert portal_threads() == before + 1
        del client
        gc.collect()
        deadline = time.monotonic() + 10
        while portal_threads() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert portal_threads() == before
        assert server.connections_open == 0 or asyncio.run(server.wait_for_connections(0)) == 0


def test_ctrl_c_inside_a_sync_with_is_a_keyboard_interrupt() -> None:
    with FakeLLMServer(default_reply=Reply.text("slow", delay_headers_s=5.0)) as server:
        before = portal_threads()
        timer = threading.Timer(0.5, _thread.interrupt_main)
        timer.start()
        with pytest.raises(KeyboardInterrupt), Client(config(server), env={}) as client:
            client.chat.completions.create(model="default", messages=HELLO)
        timer.cancel()
        assert portal_threads() == before
        leftover = [t.name for t in threading.enumerate() if t.name.startswith("asyncio_")]
        assert leftover == []


async def test_concurrent_first_requests_share_one_pool() -> None:
    async with FakeLLMServer() as server:
        client = AsyncClient(config(server), env={})
        await asyncio.gather(
            *(client.chat.completions.create(model="default", messages=HELLO) for _ in range(8))
        )
        pool = client._http
        assert pool is not None
        provider = client.provider("p")
        shared: object = getattr(provider, "_http", None)
        assert shared is pool
        await client.aclose()
        assert client._http is None and pool.is_closed
        assert await server.wait_for_connections(0, timeout=5) == 0


async def test_a_stream_closed_from_another_task_ends_the_readers_loop() -> None:
    reply = Reply(chunks=["a ", "b ", "c ", "d"], delay_between_chunks_s=0.5)
    async with FakeLLMServer(default_reply=reply) as server:
        client = AsyncClient(config(server), env={})
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        seen: list[str] = []

        async def read() -> None:
            async for chunk in stream:
                if chunk.choices:
                    seen.append(chunk.choices[0].delta.content or "")

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.2)  # the reader now waits on the provider for the next piece
        await asyncio.wait_for(stream.aclose(), timeout=5)
        await asyncio.wait_for(reader, timeout=5)  # ended cleanly: no error, no hang
        assert reader.exception() is None
        assert "".join(seen) == "a "  # what arrived before the close, nothing invented
        assert stream.route.attempts[-1].outcome == "cancelled"
        assert await server.wait_for_connections(0) == 0
        await client.close()
