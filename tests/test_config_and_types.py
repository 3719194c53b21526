"""Configuration loading, the catalog, request validation and the response types."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genrouter import AsyncClient, ConfigError, InvalidRequestError
from genrouter.catalog import load_builtin_catalog
from genrouter.config import load_config
from genrouter.errors import AllCandidatesFailedError, GenRouterError, RateLimitError, redact
from genrouter.request import build_request
from genrouter.types import ChatCompletion

GOOD_TOML = """
[providers.vllm]
type = "openai_compatible"
base_url = "http://127.0.0.1:8000/v1"
api_key = "${VLLM_KEY}"

[models."vllm/llama-3-8b"]
input_price = 0.0
output_price = 0.0
context_window = 8192

[routes.default]
candidates = ["openai/o3-mini", "dashscope/qwen-max", "vllm/llama-3-8b"]
objective = "cost"
max_cost_usd = 0.02
fallbacks = ["local/tinyswallow-1.5b"]

[routes.default.retry]
attempts = 3
on = [429, 500, "connection"]
backoff = { initial_ms = 250, max_ms = 8000, jitter = true }

[routes.vision]
candidates = ["dashscope/qwen-vl-max"]

[[rules]]
when = { input_modality = "image" }
route = "vision"

[[rules]]
when = { metadata.tier = "free" }
route = "default"
"""


def test_a_full_toml_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "genrouter.toml"
    path.write_text(GOOD_TOML)
    config = load_config(path)
    assert config.routes["default"].objective == "cost"
    assert config.routes["default"].retry.on == (429, 500, "connection")
    assert config.rules[1].when.metadata == {"tier": "free"}
    catalog = config.build_catalog()
    assert catalog.get("vllm/llama-3-8b").context_window == 8192
    assert config.providers["vllm"].resolve_api_key({"VLLM_KEY": "k"}, None) == "k"


def test_json_file_and_dict_load(tmp_path: Path) -> None:
    data = {"routes": {"default": {"candidates": ["o3-mini"]}}}
    path = tmp_path / "genrouter.json"
    path.write_text(json.dumps(data))
    assert load_config(path).routes["default"].candidates == ["o3-mini"]
    assert load_config(data).routes["default"].candidates == ["o3-mini"]


@pytest.mark.parametrize(
    ("data", "location", "fragment"),
    [
        ({"routes": {"default": {"candidates": []}}}, "routes.default.candidates", "at least 1"),
        (
            {"routes": {"default": {"candidates": ["o3-mini"], "retry": {"attempts": 0}}}},
            "routes.default.retry.attempts",
            "greater than or equal to 1",
        ),
        (
            {"routes": {"default": {"candidates": ["o3-mini"], "objective": "cheapest"}}},
            "routes.default.objective",
            "'cost', 'latency', 'balanced' or 'ordered'",
        ),
        ({"routez": {}}, "routez", "Extra inputs are not permitted"),
        (
            {"providers": {"openai": {"type": "openai", "api_key": "sk-live-123456"}}},
            "providers.openai.api_key",
            "environment reference",
        ),
        (
            {"routes": {"default": {"candidates": ["nope/model"]}}},
            "routes.default.candidates[0]",
            "unknown model 'nope/model'",
        ),
        (
            {"routes": {"a": {"candidates": ["o3-mini"]}}, "rules": [{"route": "b"}]},
            "rules[0].route",
            "unknown route 'b'",
        ),
        (
            {"providers": {"vllm": {"type": "openai_compatible", "base_url": "http://h:99999/v1"}}},
            "providers.vllm.base_url",
            "Port out of range",
        ),
        (
            {"providers": {"vllm": {"type": "openai_compatible", "base_url": "ftp://h/v1"}}},
            "providers.vllm.base_url",
            "expected an http(s) URL",
        ),
        (
            {"models": {"local/x": {"n_ctx": -1}}},
            "models.'local/x'.n_ctx",
            "greater than 0",
        ),
    ],
)
def test_bad_config_names_the_field(data: dict[str, object], location: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(data)
    assert caught.value.location == location
    assert fragment in str(caught.value)
    assert location in str(caught.value)


def test_bad_toml_file_fails_at_load_not_at_request(tmp_path: Path) -> None:
    path = tmp_path / "genrouter.toml"
    path.write_text('[routes.default]\ncandidates = ["o3-mini"]\nmax_cost_usd = "cheap"\n')
    with pytest.raises(ConfigError, match=r"routes\.default\.max_cost_usd: .*number"):
        AsyncClient(path, env={})
    path.write_text("[routes.default\n")
    with pytest.raises(ConfigError, match=r"genrouter\.toml"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_key_never_appears_in_the_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"providers": {"openai": {"type": "openai", "api_key": "sk-secret-abcdef"}}})
    assert "sk-secret-abcdef" not in str(caught.value)
    assert "sk-secret-abcdef" not in repr(caught.value)


def test_builtin_catalog_has_the_promised_models() -> None:
    catalog = load_builtin_catalog()
    for name in (
        "o3-mini",
        "qwen-max",
        "qwen-max-2025-01-25",
        "qwen-vl-max",
        "qwen-vl-plus",
        "qwen2.5-vl-72b-instruct",
        "qwen2.5-vl-7b-instruct",
        "qwen2.5-vl-3b-instruct",
        "deepseek-r1-1.58bit",
        "deepseek-r1-distill-qwen-7b",
        "tinyswallow-1.5b",
    ):
        spec = catalog.get(name)
        assert spec.price_date is not None or spec.local
    o3 = catalog.get("o3-mini")
    assert o3.system_role == "developer" and o3.max_tokens_field == "max_completion_tokens"
    assert "image" in catalog.get("qwen-vl-max").input_modalities
    assert "image" not in catalog.get("qwen-max").input_modalities
    assert o3.estimate_cost(1_000_000, 0) == pytest.approx(1.10)


def test_config_overrides_a_builtin_model() -> None:
    config = load_config({"models": {"openai/o3-mini": {"input_price": 2.0}}})
    spec = config.build_catalog().get("o3-mini")
    assert spec.input_price == 2.0 and spec.output_price == 4.40


def test_request_validation_names_the_parameter() -> None:
    ok = build_request({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert ok.needs().modalities == {"text"}
    with pytest.raises(InvalidRequestError, match="at least one message"):
        build_request({"model": "m", "messages": []})
    with pytest.raises(InvalidRequestError, match="expected a list"):
        build_request({"model": "m", "messages": "hello"})
    with pytest.raises(InvalidRequestError, match=r"messages\[0\]"):
        build_request({"model": "m", "messages": [{"role": "robot", "content": "x"}]})
    with pytest.raises(InvalidRequestError, match="max_tokens"):
        build_request(
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}
        )
    with pytest.raises(InvalidRequestError, match="temprature"):
        build_request(
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "temprature": 1}
        )


def test_response_dump_is_openai_shaped_without_route() -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "o3-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": 3,
            "completion_tokens": 5,
            "total_tokens": 8,
            "completion_tokens_details": {"reasoning_tokens": 4},
            "prompt_tokens_details": {"cached_tokens": 1},
        },
        "vendor_extra": {"kept": True},
    }
    completion = ChatCompletion.model_validate(body)
    assert completion.usage is not None
    assert completion.usage.reasoning_tokens == 4 and completion.usage.cached_tokens == 1
    dumped = completion.model_dump(exclude_none=True)
    assert "route" not in dumped and dumped["vendor_extra"] == {"kept": True}
    assert dumped["choices"][0]["message"] == {"role": "assistant", "content": "hi"}


def test_error_tree_and_redaction() -> None:
    err = RateLimitError(
        "slow down",
        retry_after=2.0,
        provider="openai",
        model="o3-mini",
        status_code=429,
        request_id="req_1",
    )
    assert isinstance(err, GenRouterError)
    assert str(err) == "openai/o3-mini: slow down (status 429, request id req_1)"
    assert redact("key sk-abcdefghijkl leaked", []) == "key *** leaked"
    assert redact("token=mysecretvalue", ["mysecretvalue"]) == "token=***"
    group = AllCandidatesFailedError("all failed", [err])
    assert isinstance(group, ExceptionGroup) and isinstance(group, GenRouterError)
    assert group.exceptions == (err,)


def test_unreadable_or_malformed_files_raise_config_errors(tmp_path: Path) -> None:
    binary = tmp_path / "genrouter.toml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)
    pytest.importorskip("yaml")
    bad_yaml = tmp_path / "genrouter.yaml"
    bad_yaml.write_text("routes: [unclosed\n")
    with pytest.raises(ConfigError, match=r"genrouter\.yaml"):
        load_config(bad_yaml)
    good_yaml = tmp_path / "ok.yml"
    good_yaml.write_text("routes:\n  default:\n    candidates: [o3-mini]\n")
    assert load_config(good_yaml).routes["default"].candidates == ["o3-mini"]


def test_resume_extends_a_partial_prefix_the_caller_already_gave() -> None:
    request = build_request(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "Write a poem"},
                {"role": "assistant", "content": "Roses are", "partial": True},
            ],
        }
    )
    continued = request.continued(" red,")
    assert len(continued.messages) == 2
    assert continued.messages[-1].content == "Roses are red,"
    fresh = build_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert fresh.continued("Hel").messages[-1].model_dump(exclude_none=True) == {
        "role": "assistant",
        "content": "Hel",
        "partial": True,
    }
