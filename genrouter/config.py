"""Configuration: providers, extra models, routes and rules, validated when loaded.

A configuration is a TOML file (``genrouter.toml``), a JSON file, a YAML file (with PyYAML
installed) or a plain dict. Every table forbids unknown keys, and a bad value fails at load
with :class:`~genrouter.errors.ConfigError` whose ``location`` is the dotted path of the field,
e.g. ``routes.default.retry.attempts``. Secrets never sit in the file in clear: name the
environment variable (``api_key_env = "OPENAI_API_KEY"``) or write ``api_key = "${VAR}"``.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from genrouter.catalog import Catalog, load_builtin_catalog
from genrouter.errors import ConfigError
from genrouter.messages import first_validation_error

__all__ = [
    "PROVIDER_FIELDS",
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
    "StateConfig",
    "load_config",
]

ProviderKind = Literal["openai", "openai_compatible", "dashscope", "local", "custom"]
RetryOn = int | Literal["connection", "timeout"]
_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")

# Which fields each provider type reads (``type`` itself aside). Setting another is a
# ConfigError naming it (``providers.NAME.region``): a field that would be ignored is a typo or
# a copy-paste from another provider, never what the user meant.
_HTTP_FIELDS = frozenset(
    {
        "base_url",
        "api_key_env",
        "api_key",
        "headers",
        "timeout_s",
        "connect_timeout_s",
        "use_sdk",
        "allow_missing_finish_reason",
        "continuation",
    }
)
PROVIDER_FIELDS: dict[str, frozenset[str]] = {
    "openai": _HTTP_FIELDS | {"organization", "project"},
    "openai_compatible": _HTTP_FIELDS,
    "dashscope": _HTTP_FIELDS | {"region"},
    "local": frozenset({"models_dir", "idle_unload_s", "preload"}),
    "custom": frozenset(),  # the instance passed in code holds its own settings
}

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

    @field_validator("headers")
    @classmethod
    def _headers_are_legal(cls, value: dict[str, str]) -> dict[str, str]:
        return check_headers(value)

    @field_validator("api_key")
    @classmethod
    def _key_is_reference(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_REF.match(value):
            raise ValueError(
                'write the key as an environment reference such as "${OPENAI_API_KEY}" '
                "or use api_key_env; keys are never stored in the file in clear"
            )
        return value

    @model_validator(mode="after")
    def _fields_fit_the_type(self) -> ProviderConfig:
        allowed = PROVIDER_FIELDS[self.type]
        unused = sorted(name for name in self.model_fields_set - {"type"} if name not in allowed)
        if unused:
            uses = ", ".join(sorted(allowed)) or "no other field"
            raise ValidationError.from_exception_data(
                "ProviderConfig",
                [
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "unused_provider_field",
                            "'{field}' is not used by providers of type '{type}' "
                            "(it takes: {uses})",
                            {"field": name, "type": self.type, "uses": uses},
                        ),
                        loc=(name,),
                        input=getattr(self, name),
                    )
                    for name in unused
                ],
            )
        return self

    def key_variable(self, default: str | None) -> str | None:
        """The environment variable that holds this provider's key."""
        if self.api_key and (match := _ENV_REF.match(self.api_key)):
            return match.group(1)
        return self.api_key_env or default

    def resolve_api_key(self, env: Mapping[str, str], default_env: str | None) -> str | None:
        """The key from *env*, or ``None`` when the variable is unset or empty."""
        variable = self.key_variable(default_env)
        return (env.get(variable) or None) if variable else None


# RFC 9110 field names are tokens; values are visible characters, spaces and tabs. httpx2
# encodes a str header value as ASCII (measured: "é" raises UnicodeEncodeError when the request
# is built), and CR, LF and NUL would split or cut the header, so anything else is refused when
# the configuration is loaded, not at the first request.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e]*$")
# Header names whose literal values are secrets too (Azure's ``api-key``, ``x-api-key``…).
_SECRET_HEADER = re.compile(r"(key|token|secret|auth|password|credential|signature)", re.I)


def check_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Validate header names and values as legal HTTP; raise ``ValueError`` naming the bad one."""
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP field name")
        if not _HEADER_VALUE.match(value) or value != value.strip(" \t"):
            raise ValueError(
                f"header {name!r} has a value with control or non-ASCII characters, or "
                "surrounding spaces (the value itself is not shown)"
            )
    return dict(headers)


def resolve_headers(headers: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """*headers* with every ``"${VAR}"`` value read from *env* (an unset variable drops it)."""
    resolved: dict[str, str] = {}
    for name, value in headers.items():
        match = _ENV_REF.match(value)
        if match is None:
            resolved[name] = value
        elif found := env.get(match.group(1)):
            resolved[name] = found
    return resolved


def secret_header_values(headers: Mapping[str, str], env: Mapping[str, str]) -> list[str]:
    """The header values to redact: every ``${VAR}`` one and those of secret-named headers."""
    secrets = []
    for name, value in headers.items():
        match = _ENV_REF.match(value)
        if match is not None:
            if found := env.get(match.group(1)):
                secrets.append(found)
        elif _SECRET_HEADER.search(name):
            secrets.append(value)
    return secrets


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
    # Which count the thresholds test: this tokenizer's; by default the count the decision
    # shows for the rule's route (its first candidate's tokenizer, calibrated).
    tokenizer: Literal["o200k_base", "cl100k_base", "qwen", "estimate"] | None = None
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
    wait never counts against a model's health. ``transport``: ``"genrouter"`` (HTTP/1.1 on
    asyncio Protocols + httptools under httpx2's client layer) or ``"httpx"`` (httpx2's own).
    """

    max_connections: int = Field(default=100, ge=1)
    max_keepalive_connections: int = Field(default=20, ge=0)
    keepalive_expiry_s: float = Field(default=5.0, gt=0)
    # See docs/routing.md ("httpx" is the escape hatch; genrouter/_transport.py is the default).
    transport: Literal["genrouter", "httpx"] = "genrouter"


class BudgetConfig(_Strict):
    """A spending limit per client over a rolling window."""

    limit_usd: float = Field(gt=0)
    window_s: float = Field(default=86_400.0, gt=0)


_NAMESPACE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def redact_url(url: str) -> str:
    """*url* with any password (and user name) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return parts._replace(netloc=f"***@{host}").geturl()


class StateConfig(_Strict):
    """Where routing state lives: this process (``memory``) or shared on Redis (``redis``).

    See docs/state.md. ``url`` may hold a password; it is redacted in every repr and message.
    """

    backend: Literal["memory", "redis"] = "memory"
    url: str | None = Field(default=None, repr=False)
    namespace: str = "genrouter"
    cache_s: float = Field(default=0.25, ge=0, le=10)  # how long a read from Redis is reused
    timeout_s: float = Field(default=0.05, gt=0, le=5)  # socket timeout of each Redis call
    retry_s: float = Field(default=5.0, gt=0)  # after Redis failed, local state until then
    reservation_ttl_s: float = Field(default=300.0, gt=0)  # a crashed process's hold expires
    probe_ttl_s: float = Field(default=60.0, gt=0)  # a crashed prober's ticket expires

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018  (raises on a bad port)
        except ValueError:
            raise ValueError("must be a redis:// or rediss:// URL (could not parse it)") from None
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(
                f"must be a redis://, rediss:// or unix:// URL, not {parts.scheme or 'no'} scheme"
            )
        return value

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        if not _NAMESPACE.fullmatch(value):
            raise ValueError("must be 1-64 characters of letters, digits and _ . : -")
        return value

    @model_validator(mode="after")
    def _url_for_redis(self) -> StateConfig:
        if self.backend == "redis" and self.url is None:
            raise PydanticCustomError("missing", "the redis backend needs a url (redis://...)")
        return self

    def __repr_args__(self) -> Any:
        yield from super().__repr_args__()
        if self.url is not None:
            yield "url", redact_url(self.url)


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
    state: StateConfig = Field(default_factory=StateConfig)
    timeout_s: float = Field(default=120.0, gt=0)
    first_token_timeout_s: float | None = Field(default=None, gt=0)
    # A request naming a model past its shutdown date goes to its successor instead of failing.
    follow_successors: bool = False
    stream_idle_timeout_s: float | None = Field(default=60.0, gt=0)
    pool: PoolConfig = Field(default_factory=PoolConfig)
    # ``genrouter serve``'s own table (checked by genrouter.server.settings at startup); the
    # client ignores it, so one file serves both ``genrouter chat`` and ``genrouter serve``.
    gateway: dict[str, Any] | None = None

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

    def check_consistency(self) -> None:
        """Fail on values that are each valid but do not fit together, or are not finite.

        Every number must be finite (a NaN weight would rank nothing), a rule's
        ``min_prompt_tokens`` may not exceed its ``max_prompt_tokens``, and a
        ``default_route`` other than ``"default"`` (which without such a route means the
        zero-config route) must name a configured route.
        """
        found = _first_non_finite(self.model_dump(), "")
        if found is not None:
            raise ConfigError("must be a finite number (not NaN or infinity)", location=found)
        for i, rule in enumerate(self.rules):
            low, high = rule.when.min_prompt_tokens, rule.when.max_prompt_tokens
            if low is not None and high is not None and low > high:
                raise ConfigError(
                    f"min_prompt_tokens ({low}) is greater than max_prompt_tokens ({high}); "
                    "no request could match",
                    location=f"rules[{i}].when.min_prompt_tokens",
                )
        named = self.default_route
        if (
            named != "default"
            and "default_route" in self.model_fields_set
            and named not in self.routes
        ):
            known = ", ".join(sorted(self.routes)) or "none are configured"
            raise ConfigError(
                f"unknown route {self.default_route!r} (routes: {known})",
                location="default_route",
            )

    def _check_aliases(self, catalog: Catalog) -> None:
        """A configured model's alias may not repeat another's, nor shadow an id or a route."""
        owners: dict[str, str] = {}
        for spec in catalog:
            for alias in spec.aliases:
                owners.setdefault(alias, spec.id)
        for model_id in self.models:
            own = catalog.resolve(model_id)
            if own is None or own.id != model_id:
                continue
            for alias in own.aliases:
                location = f"models.{model_id!r}.aliases"
                other = owners.get(alias, own.id)
                if alias in ("auto", *self.routes):
                    what = "'auto'" if alias == "auto" else f"the route {alias!r}"
                    raise ConfigError(f"alias {alias!r} would shadow {what}", location=location)
                if (
                    alias != model_id
                    and (by_id := catalog.resolve(alias)) is not None
                    and (by_id.id == alias)
                ):
                    raise ConfigError(
                        f"alias {alias!r} is the id of another model", location=location
                    )
                if other != own.id:
                    raise ConfigError(
                        f"alias {alias!r} is already an alias of {other!r}", location=location
                    )

    def check_references(self, catalog: Catalog) -> None:
        """Fail if a route names an unknown model, a rule an unknown route, or an alias clashes."""
        self._check_aliases(catalog)
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


MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""A configuration file larger than this is refused (it is a few kilobytes in practice)."""

# O_NONBLOCK: a FIFO opened for reading would otherwise wait for a writer, forever.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)


def _read_capped(path: Path) -> bytes:
    """The bytes of *path*, which must be a regular file of at most ``MAX_CONFIG_BYTES``."""
    fd = os.open(path, _OPEN_FLAGS | getattr(os, "O_BINARY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            what = "a directory" if stat.S_ISDIR(info.st_mode) else "a FIFO, device or socket"
            raise ConfigError(f"config file {str(path)!r} is {what}, not a regular file")
        chunks: list[bytes] = []
        left = MAX_CONFIG_BYTES + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file {str(path)!r} is larger than {MAX_CONFIG_BYTES} bytes; "
            "is it the right file?"
        )
    return data


def _read_file(path: Path) -> dict[str, Any]:
    try:
        raw = _read_capped(path)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    except ValueError as exc:  # a NUL byte in the path
        raise ConfigError(f"not a usable config path {str(path)!r}: {exc}") from None
    try:
        # "utf-8-sig": a byte-order mark, which some editors write, is accepted and dropped.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text: {exc.reason}") from None
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


def _as_path(source: str | os.PathLike[str]) -> Path:
    try:
        return Path(source).expanduser()
    except (TypeError, RuntimeError) as exc:  # bytes paths, "~nobody/…"
        raise ConfigError(f"not a usable config path: {source!r} ({exc})") from None


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
        source.check_consistency()
        source.check_references(source.build_catalog())
        return source
    if source is None:
        path = _default_path(os.environ if env is None else env)
        data: Mapping[str, Any] = _read_file(path) if path else {}
    elif isinstance(source, Mapping):
        data = source
    elif isinstance(source, str | os.PathLike):
        data = _read_file(_as_path(source))
    else:
        raise ConfigError(
            f"expected a Config, a mapping or a file path, got {type(source).__name__}"
        )
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        loc, msg = first_validation_error(exc, "")
        raise ConfigError(msg, location=loc.lstrip(".")) from None
    config.check_consistency()
    config.check_references(config.build_catalog())
    return config


def _first_non_finite(value: Any, location: str) -> str | None:
    """The location of the first NaN or infinite number inside *value*, if any."""
    if isinstance(value, float):
        return None if math.isfinite(value) else location
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = _first_non_finite(item, f"{location}.{key}" if location else str(key))
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = _first_non_finite(item, f"{location}[{i}]")
            if found is not None:
                return found
    return None
