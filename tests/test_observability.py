"""Tracing, metrics and logs (issue 12 items 1-3), against OpenTelemetry's in-memory SDK.

Every test gives its client its own ``TracerProvider`` / ``MeterProvider`` (no global state):
an in-memory span exporter and metric reader, plus a span processor that counts starts and
ends, so "every span was ended" is checked on each exit path. The fake server plays OpenAI
(``openai/gpt-4o-mini``) and DashScope (``dashscope/qwen-max``) on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest

from genrouter import AllCandidatesFailedError, AsyncClient, MessageParam
from genrouter.testing import FakeLLMServer, Reply

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
sdk_export = pytest.importorskip("opentelemetry.sdk.trace.export")
sdk_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
sdk_metrics = pytest.importorskip("opentelemetry.sdk.metrics")
sdk_metrics_export = pytest.importorskip("opentelemetry.sdk.metrics.export")
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

KEYS = {"OPENAI_API_KEY": "sk-test-openai-0123456789", "DASHSCOPE_API_KEY": "sk-test-ds-987654321"}
HELLO: list[MessageParam] = [{"role": "user", "content": "Say hello"}]
OPENAI, DASHSCOPE = "gpt-4o-mini", "qwen-max"


class Counting:
    """A span processor that counts starts and ends: every started span must end."""

    def __init__(self) -> None:
        self.started = 0
        self.ended = 0

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started += 1

    def on_end(self, span: Any) -> None:
        self.ended += 1

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def _on_ending(self, span: Any) -> None:
        return None


@dataclass
class Otel:
    exporter: Any = field(default_factory=lambda: sdk_memory.InMemorySpanExporter())
    reader: Any = field(default_factory=lambda: sdk_metrics_export.InMemoryMetricReader())
    counting: Counting = field(default_factory=Counting)
    tracer_provider: Any = None
    meter_provider: Any = None

    def __post_init__(self) -> None:
        self.tracer_provider = sdk_trace.TracerProvider()
        self.tracer_provider.add_span_processor(sdk_export.SimpleSpanProcessor(self.exporter))
        self.tracer_provider.add_span_processor(self.counting)
        self.meter_provider = sdk_metrics.MeterProvider(metric_readers=[self.reader])

    def client(self, config: dict[str, Any], **kwargs: Any) -> AsyncClient:
        return AsyncClient(
            config,
            env=KEYS,
            tracing=self.tracer_provider,
            metrics=self.meter_provider,
            today=lambda: date(2025, 6, 1),  # before gpt-4o-mini's deprecation notice
            **kwargs,
        )

    def tree(self) -> tuple[Any, list[Any]]:
        """The one request span and its children, in start order."""
        spans = self.exporter.get_finished_spans()
        (root,) = [s for s in spans if s.parent is None]
        children = sorted(
            (s for s in spans if s.parent is not None), key=lambda s: s.start_time or 0
        )
        for child in children:
            assert child.parent.span_id == root.context.span_id
            assert child.context.trace_id == root.context.trace_id
        return root, children

    def all_ended(self) -> bool:
        return self.counting.started == self.counting.ended

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found


@pytest.fixture
def otel() -> Otel:
    return Otel()


@pytest.fixture
async def server() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as fake:
        yield fake


def config(server: FakeLLMServer, **route: Any) -> dict[str, Any]:
    route.setdefault("candidates", [f"openai/{OPENAI}", f"dashscope/{DASHSCOPE}"])
    route.setdefault("retry", {"attempts": 1})
    return {
        "providers": {
            "openai": {"type": "openai", "base_url": server.openai_base_url},
            "dashscope": {"type": "dashscope", "base_url": server.dashscope_base_url},
        },
        "routes": {"default": route},
    }


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


async def read_all(stream: Any) -> str:
    parts = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    return "".join(parts)


def semconv_names() -> set[str]:
    from opentelemetry.semconv._incubating.attributes import gen_ai_attributes

    return {v for k, v in vars(gen_ai_attributes).items() if k.startswith("GEN_AI_")}


# -- tracing -----------------------------------------------------------------------------------


async def test_success_makes_a_client_span_with_the_genai_attributes(
    otel: Otel, server: FakeLLMServer
) -> None:
    server.enqueue(Reply.text("Hello there", usage={"prompt_tokens": 7}), model=OPENAI)
    async with otel.client(config(server)) as client:
        response = await client.chat.completions.create(
            model="default",
            messages=HELLO,
            temperature=0.3,
            top_p=0.9,
            max_tokens=40,
            seed=7,
            stop=["\n\n"],
            frequency_penalty=0.1,
            presence_penalty=0.2,
        )
    root, (child,) = otel.tree()
    assert otel.all_ended()
    assert root.name == "chat default" and root.kind is SpanKind.CLIENT
    assert child.name == f"chat {OPENAI}" and child.kind is SpanKind.CLIENT
    top = attrs(root)
    assert top["gen_ai.operation.name"] == "chat"
    assert top["gen_ai.request.model"] == "default"  # what the caller asked
    assert top["gen_ai.provider.name"] == "openai"  # the conventions' well-known value
    assert top["gen_ai.response.model"] == response.model == OPENAI  # the vendor's string
    assert top["genrouter.model"] == f"openai/{OPENAI}"
    assert top["gen_ai.response.id"] == response.id
    assert top["gen_ai.response.finish_reasons"] == ("stop",)
    assert top["server.address"] == "127.0.0.1" and top["server.port"] == server.port
    assert top["gen_ai.request.temperature"] == 0.3
    assert top["gen_ai.request.top_p"] == 0.9
    assert top["gen_ai.request.max_tokens"] == 40
    assert top["gen_ai.request.seed"] == 7
    assert top["gen_ai.request.stop_sequences"] == ("\n\n",)
    assert top["gen_ai.request.frequency_penalty"] == 0.1
    assert top["gen_ai.request.presence_penalty"] == 0.2
    assert response.usage is not None
    assert top["gen_ai.usage.input_tokens"] == response.usage.prompt_tokens == 7
    assert top["gen_ai.usage.output_tokens"] == response.usage.completion_tokens
    assert "gen_ai.input.messages" not in top and "gen_ai.output.messages" not in top
    assert root.status.status_code is StatusCode.UNSET
    low = attrs(child)
    assert low["gen_ai.request.model"] == OPENAI  # what was sent to the vendor
    assert low["gen_ai.provider.name"] == "openai"
    assert low["gen_ai.response.id"] == response.id
    assert low["genrouter.outcome"] == "ok" and low["genrouter.attempt"] == 1
    # Every gen_ai.* name used is one the installed semantic conventions define.
    used = {k for span in (root, child) for k in attrs(span) if k.startswith("gen_ai.")}
    assert used <= semconv_names(), used - semconv_names()


async def test_reasoning_and_cached_tokens_use_the_conventions_names(
    otel: Otel, server: FakeLLMServer
) -> None:
    usage = {
        "prompt_tokens": 20,
        "completion_tokens": 9,
        "total_tokens": 29,
        "completion_tokens_details": {"reasoning_tokens": 5},
        "prompt_tokens_details": {"cached_tokens": 12},
    }
    server.enqueue(Reply.text("ok", usage=usage), model=OPENAI)
    async with otel.client(config(server)) as client:
        await client.chat.completions.create(model="default", messages=HELLO)
    root, _ = otel.tree()
    assert attrs(root)["gen_ai.usage.reasoning.output_tokens"] == 5
    assert attrs(root)["gen_ai.usage.cache_read.input_tokens"] == 12


async def test_a_fallback_is_a_tree_of_two_attempts(
    otel: Otel, server: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.enqueue(Reply.error(500), model=OPENAI)
    server.enqueue(Reply.text("from qwen"), model=DASHSCOPE)
    caplog.set_level(logging.INFO, logger="genrouter")
    async with otel.client(config(server)) as client:
        response = await client.chat.completions.create(model="default", messages=HELLO)
    root, (failed, answered) = otel.tree()
    assert otel.all_ended()
    assert failed.status.status_code is StatusCode.ERROR
    assert attrs(failed)["error.type"] == "ServerError"
    assert attrs(failed)["http.response.status_code"] == 500
    assert attrs(failed)["gen_ai.provider.name"] == "openai"
    assert attrs(answered)["gen_ai.provider.name"] == "dashscope"
    assert attrs(answered)["gen_ai.response.model"] == DASHSCOPE
    assert root.status.status_code is StatusCode.UNSET  # the request succeeded
    top = attrs(root)
    assert top["gen_ai.provider.name"] == "dashscope"
    assert top["gen_ai.response.model"] == response.model == DASHSCOPE
    assert top["genrouter.fallbacks"] == 1 and top["genrouter.attempts"] == 2
    (event,) = [e for e in root.events if e.name == "genrouter.fallback"]
    assert dict(event.attributes or {})["genrouter.to"] == f"dashscope/{DASHSCOPE}"
    (line,) = [r for r in caplog.records if getattr(r, "genrouter_event", "") == "fallback"]
    assert line.levelno == logging.INFO
    assert f"from openai/{OPENAI} to dashscope/{DASHSCOPE}" in line.getMessage()
    assert "ServerError 500" in line.getMessage()
    outcomes = {
        p.attributes["genrouter.outcome"]: p.value for p in otel.points("genrouter.attempts")
    }
    assert outcomes == {"error": 1, "ok": 1}
    (fallbacks,) = otel.points("genrouter.fallbacks")
    assert fallbacks.value == 1 and fallbacks.attributes["genrouter.kind"] == "fallback"


async def test_a_retry_is_a_second_attempt_of_the_same_model_and_a_log_line(
    otel: Otel, server: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.enqueue(Reply.error(503), Reply.text("back"), model=OPENAI)
    caplog.set_level(logging.INFO, logger="genrouter")
    retry = {"attempts": 2, "backoff": {"initial_ms": 1, "max_ms": 2}}
    async with otel.client(config(server, retry=retry)) as client:
        await client.chat.completions.create(model="default", messages=HELLO)
    _, (first, second) = otel.tree()
    assert [attrs(s)["genrouter.attempt"] for s in (first, second)] == [1, 2]
    assert "genrouter.retry_delay_ms" in attrs(first)
    (line,) = [r for r in caplog.records if getattr(r, "genrouter_event", "") == "retry"]
    assert f"retrying openai/{OPENAI}" in line.getMessage() and "503" in line.getMessage()
    assert getattr(line, "genrouter_model", "") == f"openai/{OPENAI}"


async def test_a_resumed_stream_shows_the_interrupted_attempt_and_its_continuation(
    otel: Otel, server: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.enqueue(Reply.text("The capital of Japan is", omit_finish_reason=True), model=OPENAI)
    server.enqueue(Reply.text(" Tokyo."), model=DASHSCOPE)
    caplog.set_level(logging.INFO, logger="genrouter")
    async with otel.client(config(server, resume=True)) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        assert await read_all(stream) == "The capital of Japan is Tokyo."
    root, (cut, resumed) = otel.tree()
    assert otel.all_ended()
    assert attrs(cut)["genrouter.outcome"] == "interrupted"
    assert cut.status.status_code is StatusCode.ERROR
    assert attrs(resumed)["genrouter.outcome"] == "ok"
    assert attrs(resumed)["gen_ai.response.finish_reasons"] == ("stop",)
    top = attrs(root)
    assert top["genrouter.resumed"] is True and top["gen_ai.request.stream"] is True
    assert top["gen_ai.provider.name"] == "dashscope"
    assert top["gen_ai.response.time_to_first_chunk"] > 0
    assert [e.name for e in root.events] == ["genrouter.resume"]
    assert any(getattr(r, "genrouter_event", "") == "resume" for r in caplog.records)
    (ttfc,) = otel.points("gen_ai.client.operation.time_to_first_chunk")
    assert ttfc.count == 1 and ttfc.attributes["gen_ai.provider.name"] == "dashscope"
    (fallback,) = otel.points("genrouter.fallbacks")
    assert fallback.attributes["genrouter.kind"] == "resume"


async def test_a_cancelled_request_ends_every_span_with_an_error(
    otel: Otel, server: FakeLLMServer
) -> None:
    server.enqueue(Reply.text("slow", delay_headers_s=5.0), model=OPENAI)
    async with otel.client(config(server)) as client:
        task = asyncio.create_task(client.chat.completions.create(model="default", messages=HELLO))
        for _ in range(200):  # until the attempt is on the wire (planning may load a tokenizer)
            if server.requests:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    root, (child,) = otel.tree()
    assert otel.all_ended()
    assert root.status.status_code is StatusCode.ERROR
    assert attrs(root)["error.type"] == "CancelledError"
    assert attrs(child)["genrouter.outcome"] == "cancelled"
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "CancelledError"


async def test_all_failed_marks_the_request_and_each_attempt_failed(
    otel: Otel, server: FakeLLMServer
) -> None:
    server.enqueue(Reply.error(500), model=OPENAI)
    server.enqueue(Reply.error(502), model=DASHSCOPE)
    async with otel.client(config(server)) as client:
        with pytest.raises(AllCandidatesFailedError):
            await client.chat.completions.create(model="default", messages=HELLO)
    root, children = otel.tree()
    assert otel.all_ended()
    assert root.status.status_code is StatusCode.ERROR
    assert attrs(root)["error.type"] == "AllCandidatesFailedError"
    assert [attrs(c)["http.response.status_code"] for c in children] == [500, 502]
    assert all(c.status.status_code is StatusCode.ERROR for c in children)
    assert "gen_ai.response.model" not in attrs(root)
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "AllCandidatesFailedError"
    assert not otel.points("gen_ai.client.token.usage")  # nothing answered, nothing counted


async def test_a_stream_closed_early_by_the_caller_ends_its_spans(
    otel: Otel, server: FakeLLMServer
) -> None:
    server.enqueue(
        Reply(chunks=["one ", "two ", "three"], delay_between_chunks_s=0.05), model=OPENAI
    )
    async with otel.client(config(server)) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        async for _ in stream:
            break
        await stream.aclose()
    root, (child,) = otel.tree()
    assert otel.all_ended()
    assert attrs(child)["genrouter.outcome"] == "cancelled"
    assert root.status.status_code is StatusCode.UNSET  # the caller chose to stop: no error


async def test_an_abandoned_stream_still_ends_its_spans(otel: Otel, server: FakeLLMServer) -> None:
    server.enqueue(
        Reply(chunks=["one ", "two ", "three"], delay_between_chunks_s=0.05), model=OPENAI
    )
    async with otel.client(config(server)) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        async for _ in stream:
            break
        del stream, _
        for _attempt in range(50):  # the event loop's async-generator finalizer closes it
            gc.collect()
            await asyncio.sleep(0.02)
            if otel.counting.started and otel.all_ended():
                break
    assert otel.counting.started == 2 and otel.all_ended()


async def test_a_stream_never_iterated_leaves_no_open_span(
    otel: Otel, server: FakeLLMServer
) -> None:
    server.enqueue(Reply.text("unused"), model=OPENAI)
    async with otel.client(config(server)) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        await stream.aclose()
    assert otel.all_ended()


async def test_content_is_recorded_only_when_asked(otel: Otel, server: FakeLLMServer) -> None:
    server.enqueue(Reply.text("Hello there"), model=OPENAI)
    messages: list[MessageParam] = [{"role": "system", "content": "be brief"}, *HELLO]
    async with otel.client(config(server), capture_content=True) as client:
        await client.chat.completions.create(model="default", messages=messages)
    root, _ = otel.tree()
    top = attrs(root)
    assert json.loads(top["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Say hello"}]}
    ]
    assert json.loads(top["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "be brief"}
    ]
    (output,) = json.loads(top["gen_ai.output.messages"])
    assert output["role"] == "assistant" and output["finish_reason"] == "stop"
    assert output["parts"] == [{"type": "text", "content": "Hello there"}]


# -- metrics -------------------------------------------------------------------------------------


async def test_metrics_follow_the_genai_conventions(otel: Otel, server: FakeLLMServer) -> None:
    server.enqueue(Reply.text("Hello there", usage={"prompt_tokens": 11}), model=OPENAI)
    server.enqueue(Reply.text("streamed answer"), model=OPENAI)
    models = {f"openai/{OPENAI}": {"input_price": 1.0, "output_price": 2.0}}
    async with otel.client({**config(server), "models": models}) as client:
        await client.chat.completions.create(model="default", messages=HELLO)
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        await read_all(stream)
    durations = otel.points("gen_ai.client.operation.duration")
    assert sum(p.count for p in durations) == 2
    point = durations[0]
    assert list(point.explicit_bounds) == [
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ]  # fmt: skip
    assert point.attributes["gen_ai.operation.name"] == "chat"
    assert point.attributes["gen_ai.provider.name"] == "openai"
    assert point.attributes["gen_ai.request.model"] == "default"
    assert point.attributes["gen_ai.response.model"] == OPENAI
    assert point.attributes["server.port"] == server.port
    (ttfc,) = otel.points("gen_ai.client.operation.time_to_first_chunk")
    assert ttfc.count == 1  # streams only
    tokens = {
        p.attributes["gen_ai.token.type"]: p for p in otel.points("gen_ai.client.token.usage")
    }
    assert set(tokens) == {"input", "output"}
    assert tokens["input"].count == 2 and tokens["input"].max == 11
    assert list(tokens["input"].explicit_bounds)[:3] == [1, 4, 16]
    costs = {p.attributes["genrouter.cost.kind"]: p.value for p in otel.points("genrouter.cost")}
    assert set(costs) == {"estimated", "actual"} and costs["actual"] > 0


async def test_circuit_transitions_are_logged_and_counted(
    otel: Otel, server: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1000.0]
    caplog.set_level(logging.INFO, logger="genrouter")
    cfg = {
        **config(server, candidates=[f"openai/{OPENAI}"]),
        "circuit_breaker": {"failure_threshold": 1, "cooldown_s": 10},
    }
    server.enqueue(Reply.error(500), Reply.text("healed"), model=OPENAI)
    async with otel.client(cfg, clock=lambda: now[0]) as client:
        with pytest.raises(AllCandidatesFailedError):
            await client.chat.completions.create(model="default", messages=HELLO)
        now[0] += 11  # past the cooldown: the next call is the probe
        await client.chat.completions.create(model="default", messages=HELLO)
    events = [getattr(r, "genrouter_event", "") for r in caplog.records]
    assert [e for e in events if e.startswith("circuit_")] == [
        "circuit_open",
        "circuit_half_open",
        "circuit_closed",
    ]
    (opened,) = [r for r in caplog.records if getattr(r, "genrouter_event", "") == "circuit_open"]
    assert opened.levelno == logging.WARNING and "1 failures within" in opened.getMessage()
    states = {
        p.attributes["genrouter.circuit.state"]: p.value
        for p in otel.points("genrouter.circuit.transitions")
    }
    assert states == {"open": 1, "half_open": 1, "closed": 1}


async def test_a_long_retry_after_cools_the_model_down(
    otel: Otel, server: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.enqueue(Reply.error(429, headers={"Retry-After": "120"}), model=OPENAI)
    server.enqueue(Reply.text("ok"), model=DASHSCOPE)
    caplog.set_level(logging.INFO, logger="genrouter")
    retry = {"attempts": 2, "backoff": {"initial_ms": 1, "max_ms": 2}}
    async with otel.client(config(server, retry=retry)) as client:
        await client.chat.completions.create(model="default", messages=HELLO)
    (line,) = [r for r in caplog.records if getattr(r, "genrouter_event", "") == "cooldown"]
    assert f"cooling openai/{OPENAI} down for 120s" in line.getMessage()
    (cooldown,) = otel.points("genrouter.cooldowns")
    assert cooldown.value == 1 and cooldown.attributes["genrouter.model"] == f"openai/{OPENAI}"


def test_the_offline_switch_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    from genrouter.config import CircuitConfig, OfflineConfig
    from genrouter.routing.health import Health
    from genrouter.telemetry import Telemetry

    caplog.set_level(logging.INFO, logger="genrouter")
    health = Health(CircuitConfig(), OfflineConfig(), observer=Telemetry(False, False).health)
    reach = health.reachability
    reach.register("openai", "api.openai.com:443")
    reach.register("dashscope", "dashscope-intl.aliyuncs.com:443")
    reach.mark_unreachable("openai", 1.0, whole_network=True, network_level=True)
    reach.mark_unreachable("dashscope", 1.5, whole_network=True, network_level=True)
    reach.mark_reachable("openai", whole_network=True)
    lines = [(getattr(r, "genrouter_event", ""), r.levelno, r.getMessage()) for r in caplog.records]
    events = [event for event, _, _ in lines]
    assert events == ["offline", "offline", "offline", "online", "online"]
    network = [m for e, _, m in lines if e == "offline" and "network" in m]
    assert len(network) == 1 and "remote models are skipped" in network[0]
    assert all(level == logging.WARNING for e, level, _ in lines if e == "offline")


# -- the cheap path --------------------------------------------------------------------------------


def test_without_opentelemetry_in_use_nothing_is_imported_or_recorded(
    fake_server: FakeLLMServer,
) -> None:
    """Default settings, no SDK: a request imports no OpenTelemetry and builds no recorder."""
    config = {
        "providers": {"openai": {"type": "openai", "base_url": fake_server.openai_base_url}},
        "routes": {"default": {"candidates": [f"openai/{OPENAI}"]}},
    }
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from genrouter import AsyncClient

        async def main():
            env = {{"OPENAI_API_KEY": "sk-test-0123456789"}}
            async with AsyncClient({config!r}, env=env) as client:
                assert client._runtime.telemetry.begin(object()) is None
                hello = [{{"role": "user", "content": "hi"}}]
                await client.chat.completions.create(model="default", messages=hello)
            print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_the_built_in_names_match_the_installed_semantic_conventions() -> None:
    from genrouter._telemetry_names import Names, load_names

    assert load_names() == Names()


def test_the_global_providers_are_used_even_when_set_after_the_client(
    fake_server: FakeLLMServer,
) -> None:
    """Default ``tracing=None`` / ``metrics=None``: an SDK configured later is picked up."""
    fake_server.enqueue(Reply.text("hi"), model=OPENAI)
    config = {
        "providers": {"openai": {"type": "openai", "base_url": fake_server.openai_base_url}},
        "routes": {"default": {"candidates": [f"openai/{OPENAI}"]}},
    }
    script = textwrap.dedent(
        f"""
        import asyncio, datetime
        from genrouter import AsyncClient

        async def main():
            env = {{"OPENAI_API_KEY": "sk-test-0123456789"}}
            today = lambda: datetime.date(2025, 6, 1)
            async with AsyncClient({config!r}, env=env, today=today) as client:
                from opentelemetry import metrics, trace
                from opentelemetry.sdk.metrics import MeterProvider
                from opentelemetry.sdk.metrics.export import InMemoryMetricReader
                from opentelemetry.sdk.trace import TracerProvider
                from opentelemetry.sdk.trace.export import SimpleSpanProcessor
                from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                    InMemorySpanExporter,
                )

                spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
                tracer_provider = TracerProvider()
                tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
                trace.set_tracer_provider(tracer_provider)
                metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
                hello = [{{"role": "user", "content": "hi"}}]
                await client.chat.completions.create(model="default", messages=hello)
            print(sorted(s.name for s in spans.get_finished_spans()))
            data = reader.get_metrics_data()
            print(sorted(m.name for r in data.resource_metrics for s in r.scope_metrics
                         for m in s.metrics))

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    span_names, metric_names = done.stdout.strip().splitlines()
    assert span_names == str(["chat default", f"chat {OPENAI}"])
    assert "gen_ai.client.operation.duration" in metric_names
    assert "genrouter.attempts" in metric_names
