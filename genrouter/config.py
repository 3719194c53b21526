"""Configuration: providers, extra models, routes and rules, validated when loaded.

A configuration is a TOML file (``genrouter.toml``), a JSON file, a YAML file (with PyYAML
installed) or a plain dict. Every table forbids unknown keys, and a bad value fails at load
with :class:`~genrouter.errors.ConfigError` whose ``location`` is the dotted path of the field,
e.g. ``routes.default.retry.attempts``. Secrets never sit in the file in clear: name the
environment variable (``api_key_env = "OPENAI_API_KEY"``) or write ``api_key = "${VAR}"``.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from genrouter.catalog import Catalog, load_builtin_catalog
from genrouter.errors import ConfigError
from genrouter.messages import first_validation_error

__all__ = [
    "BackoffConfig",
    "BudgetConfig",
    "CircuitConfig",
    "Config",
    "OfflineConfig",
    "PoolConfig",
    "ProviderConfig",
    "ProviderKind",
    "RetryConfig",
    "RouteConfig",
    "Rule",
    "RuleMatch",
    "load_config",
]

ProviderKind = Literal["openai", "openai_compatible", "dashscope", "local", "custom"]
RetryOn = int | Literal["connection", "timeout"]
_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")

DEFAULT_RETRY_ON: tuple[RetryOn, ...] = (408, 409, 429, 500, 502, 503, 504, "connection", "timeout")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderConfig(_Strict):
    """One provider: its kind, where it lives and where its key comes from.

    ``type = "custom"`` declares a provider whose instance is passed in code
    (``AsyncClient(config, providers={"name": my_provider})``).

    ``api_key`` accepts only an environment reference (``"${VAR}"``); ``api_key_env`` names
    the variable directly. A provider kind supplies its own default variable and base URL.
    """

    type: ProviderKind
    base_url: str | None = None
    api_key_env: str | None = None
    api_key: str | None = None
    region: Literal["intl", "us", "cn"] | None = None
    organization: str | None = None
    project: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=60.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    use_sdk: bool = False
    models_dir: str | None = None
    idle_unload_s: float | None = Field(default=None, gt=0)
    preload: list[str] = Field(default_factory=list)
    # A stream is complete only when its finish_reason arrived; a server known to end good
    # answers without one can be trusted to have finished at a clean end instead.
    allow_missing_finish_reason: bool = False
    # How a resumed stream continues on this provider (default: its kind's dialect):
    # "partial" (DashScope's partial mode), "prefix" (DeepSeek's prefix completion, beta
    # endpoint), "instruction" (no prefill: ask to continue, and trim any repeated text).
    continuation: Literal["partial", "prefix", "instruction"] | None = None

    @field_validator("base_url")
    @classmethod
    def _base_url_is_http(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a port out of range or not a number
        except ValueError as exc:
            raise ValueError(f"not a valid URL: {value!r} ({exc})") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http(s) URL such as https://host/v1, got {value!r}")
        return value.rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _key_is_reference(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_REF.match(value):
            raise ValueError(
                'write the key as an environment reference such as "${OPENAI_API_KEY}" '
                "or use api_key_env; keys are never stored in the file in clear"
            )
        return value

    def key_variable(self, default: str | None) -> str | None:
        """The environment variable that holds this provider's key."""
        if self.api_key and (match := _ENV_REF.match(self.api_key)):
            return match.group(1)
        return self.api_key_env or default

    def resolve_api_key(self, env: Mapping[str, str], default_env: str | None) -> str | None:
        """The key from *env*, or ``None`` when the variable is unset or empty."""
        variable = self.key_variable(default_env)
        return (env.get(variable) or None) if variable else None


class BackoffConfig(_Strict):
    """Jittered exponential backoff between retries of one candidate."""

    initial_ms: float = Field(default=250.0, ge=0)
    max_ms: float = Field(default=8000.0, ge=0)
    multiplier: float = Field(default=2.0, ge=1)
    jitter: bool = True


class RetryConfig(_Strict):
    """How often to try one candidate and on which failures."""

    attempts: int = Field(default=3, ge=1, le=20)
    on: tuple[RetryOn, ...] = DEFAULT_RETRY_ON
    backoff: BackoffConfig = Field(default_factory=BackoffConfig)
    retry_after_cap_s: float = Field(default=30.0, ge=0)
    # A Retry-After up to this is waited out on the same model; a longer one (or one longer
    # than the time left) moves on at once and cools the model down until then.
    max_retry_after_s: float = Field(default=5.0, ge=0)


def _even_weights() -> dict[Literal["cost", "latency"], float]:
    return {"cost": 0.5, "latency": 0.5}


class RouteConfig(_Strict):
    """A named route: candidates, how to rank them, limits and fallbacks."""

    candidates: list[str] = Field(min_length=1)
    objective: Literal["cost", "latency", "balanced", "ordered"] = "ordered"
    weights: dict[Literal["cost", "latency"], float] = Field(default_factory=_even_weights)
    max_cost_usd: float | None = Field(default=None, gt=0)
    max_latency_ms: float | None = Field(default=None, gt=0)
    fallbacks: list[str] = Field(default_factory=list)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    deadline_s: float | None = Field(default=None, gt=0)
    first_token_timeout_s: float | None = Field(default=None, gt=0)
    attempt_timeout_s: float | None = Field(default=None, gt=0)
    stream_idle_timeout_s: float | None = Field(default=None, gt=0)
    resume: bool = False
    on_content_filter: Literal["next", "raise"] = "next"


class RuleMatch(_Strict):
    """Conditions of a rule; all that are set must hold."""

    input_modality: Literal["text", "image", "video"] | None = None
    min_prompt_tokens: int | None = Field(default=None, ge=0)
    max_prompt_tokens: int | None = Field(default=None, ge=0)
    tools: bool | None = None
    json_output: bool | None = Field(default=None, alias="json")
    metadata: dict[str, str] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Rule(_Strict):
    """``when`` these conditions hold, use ``route``. The first matching rule wins."""

    when: RuleMatch = Field(default_factory=RuleMatch)
    route: str
    name: str | None = None


class CircuitConfig(_Strict):
    """Per-model circuit breaker: open after failures within a window, probe after cooldown."""

    failure_threshold: int = Field(default=5, ge=1)
    window_s: float = Field(default=60.0, gt=0)
    cooldown_s: float = Field(default=30.0, gt=0)


class OfflineConfig(_Strict):
    """After a connection failure, treat the network as down for ``down_for_s`` seconds."""

    enabled: bool = True
    down_for_s: float = Field(default=30.0, gt=0)


class PoolConfig(_Strict):
    """The client's own HTTP connection pool (shared by every remote provider).

    A request waiting for a free connection is genrouter's congestion, not the model's: that
    wait never counts against a model's health.
    """

    max_connections: int = Field(default=100, ge=1)
    max_keepalive_connections: int = Field(default=20, ge=0)
    keepalive_expiry_s: float = Field(default=5.0, gt=0)


class BudgetConfig(_Strict):
    """A spending limit per client over a rolling window."""

    limit_usd: float = Field(gt=0)
    window_s: float = Field(default=86_400.0, gt=0)


class Config(_Strict):
    """The whole configuration. Build one with :func:`load_config` or ``Config(...)``."""

    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    routes: dict[str, RouteConfig] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)
    default_route: str = "default"
    circuit_breaker: CircuitConfig = Field(default_factory=CircuitConfig)
    offline: OfflineConfig = Field(default_factory=OfflineConfig)
    budget: BudgetConfig | None = None
    timeout_s: float = Field(default=120.0, gt=0)
    first_token_timeout_s: float | None = Field(default=None, gt=0)
    stream_idle_timeout_s: float | None = Field(default=60.0, gt=0)
    pool: PoolConfig = Field(default_factory=PoolConfig)

    def provider_configs(self) -> dict[str, ProviderConfig]:
        """Configured providers plus the built-in ones (``openai``, ``dashscope``, ``local``)."""
        merged = {
            "openai": ProviderConfig(type="openai"),
            "dashscope": ProviderConfig(type="dashscope"),
            "local": ProviderConfig(type="local"),
        }
        merged.update(self.providers)
        return merged

    def build_catalog(self, base: Catalog | None = None) -> Catalog:
        """The built-in catalog with this configuration's models added or overridden."""
        catalog = (base or load_builtin_catalog()).merged(self.models)
        providers = self.provider_configs()
        for spec in catalog:
            if spec.provider not in providers:
                raise ConfigError(
                    f"provider {spec.provider!r} is not configured; "
                    f"add [providers.{spec.provider}]",
                    location=f"models.{spec.id!r}.provider",
                )
        return catalog

    def check_references(self, catalog: Catalog) -> None:
        """Fail if a route names an unknown model or a rule an unknown route."""
        for route_name, route in self.routes.items():
            for field_name in ("candidates", "fallbacks"):
                for i, model in enumerate(getattr(route, field_name)):
                    if model not in catalog:
                        raise ConfigError(
                            f"unknown model {model!r}; add it under [models] or use a catalog id",
                            location=f"routes.{route_name}.{field_name}[{i}]",
                        )
        for i, rule in enumerate(self.rules):
            if rule.route not in self.routes:
                raise ConfigError(
                    f"unknown route {rule.route!r}; routes: {', '.join(sorted(self.routes))}",
                    location=f"rules[{i}].route",
                )


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text: {exc.reason}") from exc
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix == ".json":
            data = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                msg = "YAML config needs PyYAML: pip install 'genrouter[yaml]'"
                raise ConfigError(msg) from None
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: {exc}") from exc
        else:
            raise ConfigError(f"unknown config format {suffix!r}; use .toml, .json or .yaml")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a table/object")
    return data


def _default_path(env: Mapping[str, str]) -> Path | None:
    if configured := env.get("GENROUTER_CONFIG"):
        return Path(configured).expanduser()
    local = Path("genrouter.toml")
    return local if local.is_file() else None


def load_config(
    source: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Load and validate a configuration.

    *source* is a :class:`Config`, a dict, or a file path. With ``None``, the file named by
    ``GENROUTER_CONFIG`` or ``./genrouter.toml`` is read if present; otherwise the empty
    configuration is used (built-in catalog, default route chosen from what is usable).
    """
    if isinstance(source, Config):
        return source
    if source is None:
        path = _default_path(os.environ if env is None else env)
        data: Mapping[str, Any] = _read_file(path) if path else {}
    elif isinstance(source, Mapping):
        data = source
    else:
        data = _read_file(Path(source).expanduser())
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        loc, msg = first_validation_error(exc, "")
        raise ConfigError(msg, location=loc.lstrip(".")) from None
    config.check_references(config.build_catalog())
    return config
