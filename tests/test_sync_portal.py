"""The sync ``Client`` on anyio's blocking portal (issue 12, item 6): what the portal itself
does not give, and genrouter keeps on top of it."""

from __future__ import annotations

import _thread
import asyncio
import threading
import time

import pytest

from genrouter import AsyncHooks, Client, GenRouterError
from genrouter.testing import FakeLLMServer, Reply
from genrouter.types import Attempt
from tests.test_sync_shutdown import HELLO, config


def test_the_portal_thread_is_anyios() -> None:
    with FakeLLMServer() as server, Client(config(server), env={}) as client:
        thread = client._portal._thread
        assert thread.name == "genrouter-portal" and thread.daemon
        assert client._portal._portal.call(threading.current_thread) is thread
    assert not thread.is_alive()


def test_a_hook_calling_back_into_the_sync_client_gets_an_error_not_a_deadlock() -> None:
    seen: list[BaseException] = []
    client: Client | None = None

    def on_attempt_start(model: str, attempt: int) -> None:
        assert client is not None
        try:
            client.models()
        except GenRouterError as error:
            seen.append(error)

    with FakeLLMServer() as server:
        client = Client(config(server), env={}, hooks=AsyncHooks(on_attempt_start=on_attempt_start))
        with client:
            answer = client.chat.completions.create(model="default", messages=HELLO)
    assert answer.choices[0].message.content
    assert len(seen) == 1 and "its own hooks" in str(seen[0])


def test_ctrl_c_cancels_the_request_and_the_client_stays_usable() -> None:
    ended: list[Attempt] = []
    hooks = AsyncHooks(on_attempt_end=ended.append)
    with FakeLLMServer(default_reply=Reply.text("fast")) as server:
        server.enqueue(Reply.text("slow", delay_headers_s=10.0))
        with Client(config(server), env={}, hooks=hooks) as client:
            timer = threading.Timer(0.5, _thread.interrupt_main)
            timer.start()
            started = time.monotonic()
            try:
                with pytest.raises(KeyboardInterrupt):
                    client.chat.completions.create(model="default", messages=HELLO)
            finally:
                timer.cancel()
            assert time.monotonic() - started < 8  # not left waiting for the slow answer
            # The task underneath was cancelled and had unwound before the interrupt surfaced.
            assert [a.outcome for a in ended] == ["cancelled"]
            assert asyncio.run(server.wait_for_connections(0, timeout=5)) == 0
            again = client.chat.completions.create(model="default", messages=HELLO)
            assert again.choices[0].message.content == "fast"
        with pytest.raises(GenRouterError, match="closed"):
            client.models()


def test_a_call_in_flight_when_another_thread_closes_raises_a_typed_error() -> None:
    reply = Reply.text("slow", delay_headers_s=10.0)
    with FakeLLMServer(default_reply=reply) as server:
        client = Client(config(server), env={})
        caught: list[BaseException] = []

        def call() -> None:
            try:
                client.chat.completions.create(model="default", messages=HELLO)
            except BaseException as error:
                caught.append(error)

        worker = threading.Thread(target=call)
        worker.start()
        time.sleep(0.5)
        started = time.monotonic()
        client.close()
        worker.join(timeout=10)
        assert not worker.is_alive()
        assert time.monotonic() - started < 8
        client.close()  # a second close is a no-op
    assert len(caught) == 1 and isinstance(caught[0], GenRouterError)
    assert "closed" in str(caught[0])
    assert not client._portal._thread.is_alive()
