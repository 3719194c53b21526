"""No key leaves genrouter: every error path, scanned everywhere a key could surface.

A distinctive key (and a distinctive secret header value) is echoed back by the "server" in
every way vendors do it: in error bodies, in malformed JSON (which pydantic keeps as
``input_value``), in lines that are not SSE, in error events, in transport error messages.
For each provider kind and both ``use_sdk`` settings, streamed and not, the raised error is
scanned as ``traceback.format_exception`` prints it, every link of its chain (``__cause__``,
``__context__``, group members, notes) by ``repr`` and attributes, its route info, the logs
(the hook-failure log included) and every hook argument.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest

from genrouter import AsyncClient, MessageParam
from genrouter.errors import GenRouterError, RedactedCause
from genrouter.routing.hooks import AsyncHooks

# Neither is sk- or Bearer-shaped: only redaction of the exact secrets can hide them.
KEY = "tok_live_Q7mZ2v9XkLp4Wr8Nd3Yb"
HEADER_SECRET = "hdr_secret_Jf6Tq1Hs5Ug0Vc2Ex"
ENV = {"GR_TEST_KEY": KEY, "GR_TEST_HEADER": HEADER_SECRET}
HELLO: list[MessageParam] = [{"role": "user", "content": "hi"}]


def leaked(text: str) -> list[str]:
    """Which secrets (or their last 8 characters, as pydantic cuts them) *text* shows."""
    return [s for s in (KEY, HEADER_SECRET, KEY[-8:], HEADER_SECRET[-8:]) if s in text]


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [error]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        stack.extend(e for e in (node.__cause__, node.__context__) if e is not None)
        if isinstance(node, BaseExceptionGroup):
            stack.extend(node.exceptions)


def scan_error(error: BaseException) -> str:
    """Everything reachable from *error* that a log, a traceback or a debugger would show."""
    parts = ["".join(traceback.format_exception(error))]
    for node in _chain(error):
        parts += [repr(node), str(node), repr(getattr(node, "__notes__", None))]
        parts += [f"{k}={v!r}" for k, v in vars(node).items()]
        for arg in node.args:
            parts.append(repr(arg))
    return "\n".join(parts)


def _sse(*events: bytes) -> httpx2.Response:
    return httpx2.Response(
        200, content=b"".join(events), headers={"content-type": "text/event-stream"}
    )


def _json(status: int, body: bytes) -> httpx2.Response:
    return httpx2.Response(status, content=body, headers={"content-type": "application/json"})


ECHO = f"key {KEY} and header {HEADER_SECRET}"
# Each fault echoes the secrets the way some server does.
FAULTS: dict[str, Callable[[bool], httpx2.Response]] = {
    "401 json": lambda _: _json(401, f'{{"error": {{"message": "bad key {ECHO}"}}}}'.encode()),
    "500 text": lambda _: httpx2.Response(500, content=f"upstream failed: {ECHO}".encode()),
    "malformed json": lambda stream: (
        _sse(f'data: {{"id": "{ECHO}", "choices": 5}}\n\n'.encode())
        if stream
        else _json(200, f'{{"id": "{ECHO}", "choices": 5}}'.encode())
    ),
    "not json or sse": lambda stream: (
        _sse(f"Unauthorized {ECHO}\n\n".encode())
        if stream
        else _json(200, f"<html>Unauthorized {ECHO}</html>".encode())
    ),
    "error event": lambda stream: (
        _sse(f'data: {{"error": {{"message": "{ECHO}", "code": "x"}}}}\n\n'.encode())
        if stream
        else _json(200, f'{{"error": {{"message": "{ECHO}", "code": "x"}}}}'.encode())
    ),
}


def _transport_failure(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.ConnectError(f"refused while sending {ECHO}", request=request)


def config_for(kind: str, use_sdk: bool) -> dict[str, Any]:
    provider = {
        "type": kind,
        "base_url": "https://llm.example.invalid/v1",
        "api_key": "${GR_TEST_KEY}",
        "use_sdk": use_sdk,
        "headers": {"api-key": "${GR_TEST_HEADER}", "X-Team": "blue"},
    }
    return {
        "providers": {"p": provider},
        "models": {"p/first": {}, "p/second": {}},
        "routes": {
            "default": {
                "candidates": ["p/first", "p/second"],
                "retry": {"attempts": 1, "backoff": {"initial_ms": 0, "max_ms": 0}},
            }
        },
    }


class Recorder:
    """Hooks that keep every argument, and one that fails (so genrouter logs the failure)."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def hooks(self) -> AsyncHooks:
        def on_attempt_end(attempt: Any) -> None:
            self.seen.append(attempt)

        def on_fallback(failed: str, next_model: str, error: BaseException) -> None:
            self.seen.extend([failed, next_model, error])
            raise RuntimeError("a hook that fails while looking at the error") from error

        def on_complete(route: Any) -> None:
            self.seen.append(route)

        return AsyncHooks(
            on_attempt_end=on_attempt_end, on_fallback=on_fallback, on_complete=on_complete
        )


KINDS = ["openai", "openai_compatible", "dashscope"]
CASES = [*FAULTS, "transport"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("use_sdk", [False, True], ids=["raw", "sdk"])
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("case", CASES)
async def test_no_secret_anywhere_on_any_error_path(
    kind: str, use_sdk: bool, stream: bool, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    sent: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        if case == "transport":
            return _transport_failure(request)
        return FAULTS[case](stream)

    recorder = Recorder()
    caplog.set_level(logging.DEBUG)
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
        client = AsyncClient(
            config_for(kind, use_sdk),
            env=ENV,
            http_client=http,
            hooks=recorder.hooks(),
            tracing=False,
        )
        async with client:
            with pytest.raises(GenRouterError) as caught:
                if stream:
                    response = await client.chat.completions.create(messages=HELLO, stream=True)
                    async for _ in response:
                        pass
                else:
                    await client.chat.completions.create(messages=HELLO)
    # The secrets did go out, where they belong: that is what makes the scan meaningful.
    assert sent and sent[0].headers["authorization"] == f"Bearer {KEY}"
    assert sent[0].headers["api-key"] == HEADER_SECRET
    error = caught.value
    assert leaked(scan_error(error)) == []
    assert leaked(repr(getattr(error, "route", None))) == []
    log_text = "\n".join(
        r.getMessage() + ("".join(traceback.format_exception(*r.exc_info)) if r.exc_info else "")
        for r in caplog.records
    )
    assert any("hook" in r.getMessage() for r in caplog.records)  # the failing hook was logged
    assert leaked(log_text) == []
    hook_text = "\n".join(
        scan_error(x) if isinstance(x, BaseException) else repr(x) for x in recorder.seen
    )
    assert recorder.seen and leaked(hook_text) == []


async def test_sdk_errors_keep_their_facts_in_a_redacted_cause() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        body = f'{{"error": {{"message": "{ECHO}", "code": "rate_limit_exceeded"}}}}'.encode()
        return httpx2.Response(429, content=body, headers={"x-request-id": "req-7"})

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
        config = config_for("openai", True)
        config["routes"]["default"]["candidates"] = ["p/first"]
        async with AsyncClient(config, env=ENV, http_client=http, tracing=False) as client:
            with pytest.raises(GenRouterError) as caught:
                await client.chat.completions.create(messages=HELLO)
    causes = [e for e in _chain(caught.value) if isinstance(e, RedactedCause)]
    assert causes and causes[0].original_type == "openai.RateLimitError"
    assert causes[0].status_code == 429 and causes[0].request_id == "req-7"
    assert leaked(scan_error(caught.value)) == []


async def test_header_references_resolve_at_request_time_and_literals_pass() -> None:
    sent: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        body = b'{"id": "c", "created": 0, "model": "m", "object": "chat.completion", '
        body += b'"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, '
        body += b'"finish_reason": "stop"}]}'
        return _json(200, body)

    env = dict(ENV)
    async with (
        httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http,
        AsyncClient(config_for("openai_compatible", False), env=env, http_client=http) as client,
    ):
        await client.chat.completions.create(messages=HELLO)
        env["GR_TEST_HEADER"] = "rotated-value-123"
        await client.chat.completions.create(messages=HELLO)
        del env["GR_TEST_HEADER"]
        await client.chat.completions.create(messages=HELLO)
    assert sent[0].headers["api-key"] == HEADER_SECRET  # not the literal "${GR_TEST_HEADER}"
    assert sent[0].headers["x-team"] == "blue"
    assert sent[1].headers["api-key"] == "rotated-value-123"  # read per request, like the key
    assert "api-key" not in sent[2].headers  # an unset variable sends no header


def test_spans_hold_no_secret() -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    export = pytest.importorskip("opentelemetry.sdk.trace.export")
    memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    exporter = memory.InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))

    def handler(request: httpx2.Request) -> httpx2.Response:
        return FAULTS["401 json"](False)

    import asyncio

    async def run() -> None:
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
            config = config_for("openai", False)
            async with AsyncClient(config, env=ENV, http_client=http, tracing=provider) as client:
                with pytest.raises(GenRouterError):
                    await client.chat.completions.create(messages=HELLO)

    asyncio.run(run())
    spans = exporter.get_finished_spans()
    assert spans
    text = "\n".join(span.to_json() for span in spans)
    assert leaked(text) == []


@pytest.mark.parametrize("case", ["500 text", "transport"])
async def test_routing_log_lines_hold_no_secret(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The retry and fallback lines (genrouter._logging) quote the error: never its key."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return _transport_failure(request) if case == "transport" else FAULTS[case](False)

    config = config_for("openai_compatible", False)
    config["routes"]["default"]["retry"] = {"attempts": 2, "backoff": {"initial_ms": 1}}
    caplog.set_level(logging.DEBUG, logger="genrouter")
    async with (
        httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http,
        AsyncClient(config, env=ENV, http_client=http, tracing=False) as client,
    ):
        with pytest.raises(GenRouterError):
            await client.chat.completions.create(messages=HELLO)
    events = {getattr(r, "genrouter_event", None) for r in caplog.records}
    assert {"retry", "fallback"} <= events, events
    assert leaked("\n".join(r.getMessage() for r in caplog.records)) == []
