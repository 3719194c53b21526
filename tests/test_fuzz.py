"""Generated input against the two doors: requests and configurations.

Hypothesis builds requests and configs from valid pieces, broken pieces (lone surrogates,
NaN, bytes, objects, control characters, FIFOs…) and random types. Whatever it builds, only
genrouter's typed errors may escape, an accepted request must serialize to strict JSON, and a
refused request must send nothing. Example counts are bounded so the suite stays fast.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_core import to_json

from genrouter import Client
from genrouter.config import Config, load_config
from genrouter.errors import ConfigError, GenRouterError, InvalidRequestError, MediaError
from genrouter.request import build_request
from genrouter.testing import FakeLLMServer

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
)

# Text that may hold anything, lone surrogates and control characters included.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
odd_floats = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 0.5, 3.0])
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), odd_floats, st.floats(), any_text
)
strange = st.one_of(
    st.binary(max_size=4), st.just(object()), st.just({1, 2}), st.just(b"x"), st.just(...)
)
json_ish = st.recursive(
    st.one_of(scalars, strange),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(any_text, inner, max_size=3)
    ),
    max_leaves=8,
)
sources = st.one_of(
    st.sampled_from(
        [
            "https://example.com/a.png",
            "data:image/png;base64,iVBORw0KGgo=",
            "data:image/png;base64,@@",
            "data:text/plain,hi",
            "/dev/zero",
            "/dev/null",
            "/nonexistent/x.png",
            "file:///etc/hostname",
            "ftp://h/x",
            "oss://bucket/x.png",
            "~nobody-here/x.png",
            "a\x00b.png",
        ]
    ),
    any_text,
)
parts = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": any_text}),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": sources})}
    ),
    st.fixed_dictionaries(
        {"type": st.just("video_url"), "video_url": st.fixed_dictionaries({"url": sources})}
    ),
    st.fixed_dictionaries({"type": st.just("video"), "video": st.lists(sources, max_size=2)}),
    json_ish,
)
messages = st.one_of(
    st.lists(
        st.fixed_dictionaries(
            {
                "role": st.sampled_from(["user", "system", "assistant", "tool", "x", 1]),
                "content": st.one_of(any_text, st.lists(parts, max_size=3), json_ish),
            }
        ),
        max_size=3,
    ),
    json_ish,
)
schemas = st.one_of(
    st.just({"type": "object", "properties": {"a": {"type": "string"}}}),
    st.just({"type": "nope"}),
    st.just({"required": "a"}),
    json_ish,
)
tools = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {
                "type": st.just("function"),
                "function": st.fixed_dictionaries(
                    {"name": st.one_of(st.just("f"), any_text, json_ish)},
                    optional={"parameters": schemas, "description": json_ish},
                ),
            }
        ),
        json_ish,
    ),
    max_size=2,
)
response_formats = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object", "xml"])}),
    st.fixed_dictionaries(
        {
            "type": st.just("json_schema"),
            "json_schema": st.fixed_dictionaries(
                {"name": st.one_of(st.just("out"), any_text)}, optional={"schema": schemas}
            ),
        }
    ),
    json_ish,
)
numbers = st.one_of(odd_floats, st.integers(-5, 300), st.floats(), json_ish)
params = st.fixed_dictionaries(
    {"messages": messages},
    optional={
        "model": st.one_of(st.just("auto"), st.just("p/m"), any_text, json_ish),
        "temperature": numbers,
        "top_p": numbers,
        "max_tokens": numbers,
        "presence_penalty": numbers,
        "timeout": numbers,
        "stop": st.one_of(any_text, st.lists(any_text, max_size=2), json_ish),
        "tools": st.one_of(tools, json_ish),
        "tool_choice": st.one_of(
            st.sampled_from(["auto", "none", "required", "sometimes"]),
            st.just({"type": "function", "function": {"name": "f"}}),
            json_ish,
        ),
        "response_format": response_formats,
        "extra_body": json_ish,
        "metadata": json_ish,
        "provider_options": json_ish,
        "seed": numbers,
        "user": st.one_of(any_text, json_ish),
    },
)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


def test_requests_only_raise_typed_errors_and_refused_ones_send_nothing(
    server: FakeLLMServer,
) -> None:
    config = {
        "providers": {"p": {"type": "openai_compatible", "base_url": server.openai_base_url}},
        "models": {"p/m": {"input_modalities": ["text", "image", "video"]}},
        "routes": {"default": {"candidates": ["p/m"], "retry": {"attempts": 1}}},
    }
    with Client(config, env={}, tracing=False) as client:

        @FUZZ
        @given(params)
        def check(generated: dict[str, Any]) -> None:
            call = {"model": "auto", **generated}  # create()'s default, for build_request too
            try:
                request = build_request(call)
            except (InvalidRequestError, MediaError):
                before = len(server.requests)
                with pytest.raises(GenRouterError):
                    client.chat.completions.create(**call)
                assert len(server.requests) == before
                return
            # Accepted: what goes on the wire is strict JSON (no NaN, no surrogates).
            body = {**request.wire_params(), **(request.extra_body or {})}
            json.dumps(body, allow_nan=False)
            to_json(body)
            to_json([m.model_dump(exclude_none=True) for m in request.messages])

        check()


ids = st.sampled_from(["openai/o3-mini", "openai/gpt-4o-mini", "dashscope/qwen-max", "p/m"])
headers = st.dictionaries(
    st.one_of(st.sampled_from(["X-A", "api-key", "bad name", "x\r\n"]), any_text),
    st.one_of(st.sampled_from(["ok", "${VAR}", "a\r\nb", "€", " x"]), any_text),
    max_size=2,
)
providers = st.dictionaries(
    st.sampled_from(["p", "openai", "q"]),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["openai", "openai_compatible", "dashscope", "local", "x"])},
        optional={
            "base_url": st.one_of(st.just("http://127.0.0.1:9/v1"), any_text, json_ish),
            "headers": st.one_of(headers, json_ish),
            "timeout_s": numbers,
            "api_key": st.one_of(st.just("${K}"), any_text),
        },
    ),
    max_size=2,
)
routes = st.dictionaries(
    st.sampled_from(["default", "fast", "auto"]),
    st.fixed_dictionaries(
        {"candidates": st.one_of(st.lists(ids, min_size=1, max_size=2), json_ish)},
        optional={
            "weights": st.dictionaries(st.sampled_from(["cost", "latency"]), numbers),
            "objective": st.sampled_from(["cost", "latency", "balanced", "bogus"]),
            "deadline_s": numbers,
            "max_cost_usd": numbers,
        },
    ),
    max_size=2,
)
rules = st.lists(
    st.fixed_dictionaries(
        {"route": st.sampled_from(["default", "fast", "missing"])},
        optional={
            "when": st.fixed_dictionaries(
                {},
                optional={"min_prompt_tokens": numbers, "max_prompt_tokens": numbers},
            )
        },
    ),
    max_size=2,
)
configs = st.fixed_dictionaries(
    {},
    optional={
        "providers": providers,
        "models": st.dictionaries(
            ids,
            st.fixed_dictionaries(
                {}, optional={"aliases": st.lists(st.one_of(ids, any_text), max_size=2)}
            ),
            max_size=2,
        ),
        "routes": routes,
        "rules": rules,
        "default_route": st.one_of(st.sampled_from(["default", "fast", "defualt"]), any_text),
        "budget": st.one_of(st.fixed_dictionaries({"limit_usd": numbers}), json_ish),
        "timeout_s": numbers,
    },
)


@FUZZ
@given(configs)
def test_configs_only_raise_config_errors(data: dict[str, Any]) -> None:
    try:
        config = load_config(data)
    except ConfigError:
        return
    assert isinstance(config, Config)
    # What loaded is consistent: every number finite, references resolve, headers legal.
    json.dumps(config.model_dump(mode="json"), allow_nan=False)
    if data.get("default_route", "default") != "default":
        assert config.default_route in config.routes
    for rule in config.rules:
        assert rule.route in config.routes
