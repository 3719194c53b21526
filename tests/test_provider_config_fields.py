"""Provider config is validated per type: a field the type does not use is refused (issue 15)."""

from __future__ import annotations

import pytest

from genrouter.config import PROVIDER_FIELDS, ProviderConfig, load_config
from genrouter.errors import ConfigError


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("openai", "region", "us"),
        ("openai", "models_dir", "/models"),
        ("dashscope", "models_dir", "/models"),
        ("dashscope", "organization", "org-1"),
        ("openai_compatible", "region", "cn"),
        ("local", "base_url", "http://127.0.0.1:8080/v1"),
        ("local", "api_key_env", "KEY"),
        ("custom", "timeout_s", 5.0),
    ],
)
def test_a_field_the_type_does_not_use_is_a_config_error_naming_it(
    kind: str, field: str, value: object
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"providers": {"mine": {"type": kind, field: value}}})
    assert caught.value.location == f"providers.mine.{field}"
    assert repr(field) in str(caught.value) and repr(kind) in str(caught.value)


def test_every_field_is_allowed_somewhere_and_each_type_accepts_its_own() -> None:
    declared = set(ProviderConfig.model_fields) - {"type"}
    assert set().union(*PROVIDER_FIELDS.values()) == declared
    samples: dict[str, object] = {
        "base_url": "http://127.0.0.1:1/v1",
        "api_key_env": "KEY",
        "api_key": "${KEY}",
        "region": "cn",
        "organization": "org",
        "project": "proj",
        "headers": {"X-A": "1"},
        "timeout_s": 3.0,
        "connect_timeout_s": 1.0,
        "use_sdk": True,
        "models_dir": "/models",
        "idle_unload_s": 60.0,
        "preload": ["local/x"],
        "allow_missing_finish_reason": True,
        "continuation": "prefix",
    }
    for kind, fields in PROVIDER_FIELDS.items():
        config = ProviderConfig.model_validate({"type": kind, **{f: samples[f] for f in fields}})
        assert config.model_fields_set == {"type", *fields}


def test_defaults_are_not_counted_as_set() -> None:
    # Built-in providers and model_copy (DashScope fills base_url from the region) still work.
    config = load_config({"providers": {"cn": {"type": "dashscope", "region": "cn"}}})
    dashscope = config.provider_configs()["cn"]
    assert dashscope.model_copy(update={"base_url": "http://127.0.0.1:1"}).region == "cn"
    assert ProviderConfig(type="local").models_dir is None
