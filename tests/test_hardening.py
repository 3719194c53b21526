"""Regression tests for every escape of issue 11: bad input gets a typed error before any
I/O, files are read safely, configs are checked whole, and per-client state stays bounded."""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from genrouter import AsyncClient, MessageParam
from genrouter._lru import PER_MODEL_CACHE_SIZE, LRUDict
from genrouter.config import MAX_CONFIG_BYTES, BudgetConfig, load_config
from genrouter.errors import ConfigError, InvalidRequestError, MediaError
from genrouter.media import resolve_image_source
from genrouter.providers.openai_compat import _read_media_in_time
from genrouter.request import build_request
from genrouter.routing.budget import BUCKETS_PER_WINDOW, Budget
from genrouter.testing import FakeLLMServer

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)
HELLO: list[MessageParam] = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


def user(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": "look"}, *parts]}]


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


def wire(server: FakeLLMServer) -> dict[str, Any]:
    return {
        "providers": {"p": {"type": "openai_compatible", "base_url": server.openai_base_url}},
        "models": {"p/vision": {"input_modalities": ["text", "image", "video"]}},
        "routes": {"default": {"candidates": ["p/vision"], "retry": {"attempts": 1}}},
    }


def fifo(tmp_path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    return path


# -- one door for request input (each case: typed error naming the field, nothing sent) ------

BAD_REQUESTS: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("lone surrogate", {"messages": [{"role": "user", "content": "hi \ud800"}]},
     InvalidRequestError, "messages[0].content"),
    ("surrogate in a part", {"messages": user({"type": "text", "text": "\udfff"})},
     InvalidRequestError, "messages[0].content[1].text"),
    ("messages=False", {"messages": False}, InvalidRequestError, "messages"),
    ("messages=123", {"messages": 123}, InvalidRequestError, "messages"),
    ("bytes in tools", {"tools": [{"type": "function", "function": {"name": b"x"}}]},
     InvalidRequestError, "tools[0].function.name"),
    ("object in extra_body", {"extra_body": {"x": object()}}, InvalidRequestError, "extra_body.x"),
    ("NaN in extra_body", {"extra_body": {"x": [1.0, math.nan]}},
     InvalidRequestError, "extra_body.x[1]"),
    ("inf in provider_options", {"provider_options": {"dashscope": {"top_k": math.inf}}},
     InvalidRequestError, "provider_options.dashscope.top_k"),
    ("control char in model", {"model": "p/a\nb"}, InvalidRequestError, "model"),
    ("temperature=nan", {"temperature": math.nan}, InvalidRequestError, "temperature"),
    ("top_p=inf", {"top_p": math.inf}, InvalidRequestError, "top_p"),
    ("surrogate in metadata", {"metadata": {"team": "\ud83d"}},
     InvalidRequestError, "metadata.team"),
    ("invalid tool schema",
     {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "nope"}}}]},
     InvalidRequestError, "tools[0].function.parameters.type"),
    ("tool schema not an object",
     {"tools": [{"type": "function", "function": {"name": "f", "parameters": [1]}}]},
     InvalidRequestError, "tools[0].function.parameters"),
    ("bad function name", {"tools": [{"type": "function", "function": {"name": "a b"}}]},
     InvalidRequestError, "tools[0].function.name"),
    ("bogus response_format", {"response_format": {"type": "xml"}},
     InvalidRequestError, "response_format.type"),
    ("json_schema without schema object", {"response_format": {"type": "json_schema"}},
     InvalidRequestError, "response_format.json_schema"),
    ("invalid response schema",
     {"response_format": {"type": "json_schema",
                          "json_schema": {"name": "a", "schema": {"required": "x"}}}},
     InvalidRequestError, "response_format.json_schema.schema.required"),
    ("bogus tool_choice", {"tools": [TOOL], "tool_choice": "sometimes"},
     InvalidRequestError, "tool_choice"),
    ("tool_choice without tools", {"tool_choice": "required"}, InvalidRequestError, "tool_choice"),
    ("tool_choice names no tool",
     {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "other"}}},
     InvalidRequestError, "tool_choice.function.name"),
    ("bad base64 data URI", {"messages": user(image("data:image/png;base64,@@@"))},
     MediaError, "messages[0].content[1].image_url.url"),
    ("non-image data URI", {"messages": user(image("data:text/plain;base64,aGk="))},
     MediaError, "messages[0].content[1].image_url.url"),
    ("not a data URI", {"messages": user(image("data:nonsense"))},
     MediaError, "messages[0].content[1].image_url.url"),
    ("URL without host", {"messages": user(image("https:///x.png"))},
     MediaError, "messages[0].content[1].image_url.url"),
    ("unknown scheme", {"messages": user(image("ftp://host/x.png"))},
     MediaError, "messages[0].content[1].image_url.url"),
    ("missing image file", {"messages": user(image("/nonexistent/x.png"))},
     MediaError, "messages[0].content[1].image_url.url"),
    ("/dev/zero image", {"messages": user(image("/dev/zero"))},
     MediaError, "messages[0].content[1].image_url.url"),
    ("local video file",
     {"messages": user({"type": "video_url", "video_url": {"url": "/tmp/a.mp4"}})},
     MediaError, "messages[0].content[1].video_url.url"),
    ("/dev/urandom frame",
     {"messages": user({"type": "video", "video": ["https://e.com/a.png", "/dev/urandom"]})},
     MediaError, "messages[0].content[1].video[1]"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("params", "error", "field"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_sent(
    server: FakeLLMServer, params: dict[str, Any], error: type[Exception], field: str
) -> None:
    server.reset()
    call = {"model": "auto", "messages": HELLO, **params}
    with pytest.raises(error) as caught:
        build_request(call)
    assert getattr(caught.value, "param", None) == field
    async with AsyncClient(wire(server), env={}) as client:
        for stream in (False, True):
            with pytest.raises(error) as caught:
                await client.chat.completions.create(**{**call, "stream": stream})
            assert str(caught.value).startswith(field)
        with pytest.raises(error):
            client.route(**call)
    assert server.requests == []


def test_nan_is_called_not_finite_rather_than_out_of_range() -> None:
    with pytest.raises(InvalidRequestError, match="finite"):
        build_request({"model": "m", "messages": HELLO, "temperature": math.nan})


def test_good_requests_still_pass_the_door(tmp_path: Path) -> None:
    picture = tmp_path / "p.png"
    picture.write_bytes(PNG)
    request = build_request(
        {
            "model": "p/m",
            "messages": user(image(str(picture)), image("https://example.com/a.png")),
            "tools": [TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_time"}},
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
            },
            "extra_body": {"nested": {"ok": [1, 2.5, None, True, "é"]}},
            "temperature": 0.5,
        }
    )
    assert request.tools == [TOOL]


# -- local media: regular files only, capped, within the deadline -------------------------


def _fail_if_hung(target: Path, started: float) -> None:
    if time.monotonic() - started > 5:  # pragma: no cover - only when the bug is back
        # Release a reader stuck on the FIFO so the suite does not hang.
        fd = os.open(target, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)


async def test_a_fifo_image_is_refused_at_once_by_the_door_and_by_the_reader(
    tmp_path: Path,
) -> None:
    path = fifo(tmp_path)
    with pytest.raises(MediaError, match="not a regular file"):
        build_request({"model": "m", "messages": user(image(str(path))), "timeout": 2})
    started = time.monotonic()
    watchdog = threading.Timer(6, _fail_if_hung, (path, started))
    watchdog.start()
    try:
        with pytest.raises(MediaError, match="not a regular file"):
            await asyncio.wait_for(asyncio.to_thread(resolve_image_source, str(path)), 10)
    finally:
        watchdog.cancel()
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_devices_are_refused_without_reading(device: str) -> None:
    if not Path(device).exists():
        pytest.skip(f"no {device}")
    with pytest.raises(MediaError, match="not a regular file"):
        resolve_image_source(device)


def test_reads_never_pass_the_cap(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(PNG + b"\0" * 2048)
    with pytest.raises(MediaError, match="over the limit"):
        resolve_image_source(str(big), max_bytes=1024)
    assert resolve_image_source(str(big), max_bytes=4096).startswith("data:image/png;base64,")


async def test_reading_media_is_bounded_by_the_time_left() -> None:
    def slow(messages: list[dict[str, Any]]) -> None:
        time.sleep(0.5)

    started = time.monotonic()
    with pytest.raises(MediaError, match="longer than"):
        await _read_media_in_time(slow, [], 0.05)
    assert time.monotonic() - started < 0.45


# -- config validated at the door -----------------------------------------------------------

ROUTE = {"candidates": ["openai/o3-mini"]}
BAD_CONFIGS: list[tuple[str, dict[str, Any], str]] = [
    ("default_route typo", {"routes": {"default": ROUTE}, "default_route": "defualt"},
     "default_route"),
    ("CRLF in a header",
     {"providers": {"p": {"type": "openai_compatible", "base_url": "http://127.0.0.1:1/v1",
                          "headers": {"X-A": "a\r\nInjected: 1"}}}}, "providers.p.headers"),
    ("non-ASCII header value",
     {"providers": {"p": {"type": "openai_compatible", "base_url": "http://127.0.0.1:1/v1",
                          "headers": {"X-A": "café"}}}}, "providers.p.headers"),
    ("bad header name",
     {"providers": {"p": {"type": "openai_compatible", "base_url": "http://127.0.0.1:1/v1",
                          "headers": {"X A": "1"}}}}, "providers.p.headers"),
    ("min > max prompt tokens",
     {"routes": {"r": ROUTE},
      "rules": [{"when": {"min_prompt_tokens": 10, "max_prompt_tokens": 5}, "route": "r"}]},
     "rules[0].when.min_prompt_tokens"),
    ("NaN weight", {"routes": {"r": {**ROUTE, "weights": {"cost": math.nan}}}},
     "routes.r.weights.cost"),
    ("inf weight", {"routes": {"r": {**ROUTE, "weights": {"latency": math.inf}}}},
     "routes.r.weights.latency"),
    ("rule to an unknown route", {"routes": {"r": ROUTE}, "rules": [{"route": "q"}]},
     "rules[0].route"),
    ("duplicate alias",
     {"models": {"openai/a1": {"aliases": ["same"]}, "openai/a2": {"aliases": ["same"]}}},
     "models.'openai/a2'.aliases"),
    ("alias shadows an id", {"models": {"openai/a1": {"aliases": ["openai/o3-mini"]}}},
     "models.'openai/a1'.aliases"),
    ("alias shadows auto", {"models": {"openai/a1": {"aliases": ["auto"]}}},
     "models.'openai/a1'.aliases"),
    ("alias shadows a route", {"routes": {"fast": ROUTE},
                               "models": {"openai/a1": {"aliases": ["fast"]}}},
     "models.'openai/a1'.aliases"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "location"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS]
)
def test_bad_configs_fail_at_load_naming_the_field(data: dict[str, Any], location: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(data)
    assert caught.value.location == location


def test_a_config_object_built_in_code_is_checked_too() -> None:
    from genrouter.config import Config

    config = Config.model_validate({"routes": {"default": ROUTE}, "default_route": "defualt"})
    with pytest.raises(ConfigError, match="defualt"):
        AsyncClient(config, env={})


def test_config_source_of_the_wrong_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="int"):
        AsyncClient(123, env={})  # type: ignore[arg-type]


def test_a_fifo_config_does_not_hang(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path = tmp_path / "genrouter.toml"
    os.mkfifo(path)
    started = time.monotonic()
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(path)
    assert time.monotonic() - started < 5


def test_dev_zero_as_config_is_a_config_error() -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config("/dev/zero")


def test_a_config_with_a_bom_loads_and_a_huge_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "genrouter.toml"
    path.write_bytes(b"\xef\xbb\xbf" + b'[routes.default]\ncandidates = ["openai/o3-mini"]\n')
    assert load_config(path).routes["default"].candidates == ["openai/o3-mini"]
    path.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than"):
        load_config(path)
    path.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(path)


def test_a_default_route_left_unset_keeps_the_zero_config_route() -> None:
    assert load_config({}).default_route == "default"


# -- bounded state ----------------------------------------------------------------------------


def test_budget_state_is_bounded_and_exact_within_the_window() -> None:
    budget = Budget(BudgetConfig(limit_usd=1e9, window_s=60))
    for i in range(100_000):
        budget.settle(budget.reserve(0.01), 0.01, now=i * 0.001)  # 100 s of traffic
    assert len(budget.spent) <= BUCKETS_PER_WINDOW + 1
    # The last 60 s (plus at most one bucket) of 100 s at $10/s are still counted.
    assert 600 - 1e-6 <= budget.spent_usd(100.0) <= 600 + 10 * 60 / BUCKETS_PER_WINDOW + 1e-6
    assert budget.reserved == 0.0
    assert budget.spent_usd(1000.0) == 0.0 and not budget.spent


def test_budget_ignores_non_finite_costs() -> None:
    budget = Budget(BudgetConfig(limit_usd=1.0, window_s=60))
    budget.settle(budget.reserve(math.nan), math.nan, now=0)
    budget.settle(budget.reserve(0.2), math.inf, now=0)
    assert budget.remaining_usd(0) == pytest.approx(0.8)


def test_lru_dict_keeps_the_most_recently_used() -> None:
    cache: LRUDict[str, int] = LRUDict(2)
    cache["a"], cache["b"] = 1, 2
    assert cache.get("a") == 1  # renews "a"
    cache["c"] = 3
    assert list(cache) == ["a", "c"] and cache.get("b") is None


def test_ad_hoc_model_names_do_not_pile_up() -> None:
    config = {
        "providers": {"p": {"type": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"}}
    }
    client = AsyncClient(config, env={}, tracing=False)
    for i in range(PER_MODEL_CACHE_SIZE + 200):
        client.route(model=f"p/model-{i}", messages=HELLO)
    planner = client._planner
    assert len(planner._adhoc) <= PER_MODEL_CACHE_SIZE
    assert len(planner._single_routes) <= PER_MODEL_CACHE_SIZE
    assert len(client.health.circuits) <= PER_MODEL_CACHE_SIZE
    assert client.model_spec(f"p/model-{PER_MODEL_CACHE_SIZE + 199}") is not None


def test_the_security_doc_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import re

    doc = (Path(__file__).parent.parent / "docs" / "security.md").read_text("utf-8")
    for block in re.findall(r"```python\n(.*?)```", doc, re.S):
        exec(compile(block, "docs/security.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "temperature -> temperature: must be a finite number" in printed
    assert "image_url.url -> " in printed and "not a regular file" in printed


async def test_a_header_read_from_the_environment_is_checked_before_sending(
    server: FakeLLMServer,
) -> None:
    from genrouter.errors import AllCandidatesFailedError, AuthenticationError

    server.reset()
    config = wire(server)
    config["providers"]["p"]["headers"] = {"api-key": "${HEADER_KEY}"}
    env = {"HEADER_KEY": "abc\r\nInjected: yes"}
    async with AsyncClient(config, env=env, tracing=False) as client:
        with pytest.raises(AllCandidatesFailedError) as caught:
            await client.chat.completions.create(messages=HELLO)
    (error,) = caught.value.exceptions
    assert isinstance(error, AuthenticationError) and error.code == "malformed_header"
    assert "Injected" not in str(error)
    assert server.requests == []
