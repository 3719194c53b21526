"""The model catalog: what each model is, costs, accepts and can do.

The built-in entries live in ``genrouter/data/catalog.json`` (read when a client first needs it,
never from the network). A configuration can add models or override any field of a built-in one.
Model ids are ``"provider/name"``; each model may also have aliases (``"o3-mini"``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from genrouter.errors import ConfigError
from genrouter.messages import first_validation_error

__all__ = ["Catalog", "FactSource", "Modality", "ModelSpec", "load_builtin_catalog"]

Modality = Literal["text", "image", "video", "audio"]


class FactSource(BaseModel):
    """Where some of a model's facts came from, when that was checked, and whether the page
    was the vendor's own (``verified``) or something less certain (an archive, a reseller)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    checked_on: date
    verified: bool = False
    facts: tuple[str, ...] = ()  # field names this source supports, e.g. ("shutdown_on",)
    note: str | None = None


class ModelSpec(BaseModel):
    """One model: identity, prices (USD per million tokens), limits and capabilities."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]+/.+$")
    provider: str
    model: str
    aliases: tuple[str, ...] = ()
    family: str | None = None
    description: str | None = None

    input_price: float | None = Field(default=None, ge=0)
    output_price: float | None = Field(default=None, ge=0)
    cached_input_price: float | None = Field(default=None, ge=0)
    price_date: date | None = None

    context_window: int = Field(default=8192, gt=0)
    max_output_tokens: int = Field(default=4096, gt=0)
    input_modalities: frozenset[Modality] = frozenset({"text"})
    # Capabilities: true, false, or unset (None). Unset means "no" for OpenAI, DashScope and
    # local models (the catalog lists what they have) and "unknown, try it" for models of an
    # openai_compatible provider, whose server a rejection then fails over from.
    tools: bool | None = None
    json_schema: bool | None = None
    json_object: bool | None = None
    reasoning: bool = False
    streaming_usage: bool = True
    local: bool = False
    tokenizer: str | None = None

    # Wire rules for OpenAI-style APIs (o-series: developer role, max_completion_tokens).
    system_role: Literal["system", "developer"] = "system"
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    unsupported_params: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = Field(default_factory=dict)

    # Lifecycle: announced deprecation, shutdown (the model stops answering) and what replaces it.
    deprecated_on: date | None = None
    shutdown_on: date | None = None
    successor: str | None = None
    sources: tuple[FactSource, ...] = ()
    added_by_refresh: bool = False  # listed by the provider but unknown to the catalog

    # Latency priors until the client has observed the model.
    prior_ttft_ms: float = Field(default=800.0, gt=0)
    prior_tokens_per_s: float = Field(default=50.0, gt=0)

    # Local models (llama.cpp): where the GGUF is and how to load it.
    path: str | None = None
    package: str | None = None
    n_ctx: int | None = Field(default=None, gt=0)
    n_gpu_layers: int = 0
    n_threads: int | None = Field(default=None, gt=0)
    chat_format: str | None = None
    system_prompt: Literal["keep", "fold_into_user"] = "keep"
    reasoning_format: Literal["none", "think_tags"] = "none"

    @model_validator(mode="after")
    def _check_identity(self) -> ModelSpec:
        if not self.id.startswith(self.provider + "/"):
            raise ValueError(f"id {self.id!r} must start with its provider {self.provider!r}/")
        return self

    @property
    def verified(self) -> bool:
        """Whether every recorded source is the vendor's own page (no sources: ``False``)."""
        return bool(self.sources) and all(s.verified for s in self.sources)

    @property
    def name(self) -> str:
        """The part of the id after the provider, e.g. ``o3-mini``."""
        return self.id.split("/", 1)[1]

    def estimate_cost(
        self, prompt_tokens: int, output_tokens: int, cached_tokens: int = 0
    ) -> float | None:
        """Cost in USD of a call with these token counts, or ``None`` if the price is unknown."""
        if self.local:
            return 0.0
        if self.input_price is None or self.output_price is None:
            return None
        cached = min(cached_tokens, prompt_tokens)
        cached_price = (
            self.cached_input_price if self.cached_input_price is not None else (self.input_price)
        )
        return (
            (prompt_tokens - cached) * self.input_price
            + cached * cached_price
            + output_tokens * self.output_price
        ) / 1_000_000


class Catalog:
    """Models by id and alias. Immutable once built; each client builds its own."""

    __slots__ = ("_by_id", "_by_name")

    def __init__(self, models: Iterable[ModelSpec]) -> None:
        self._by_id: dict[str, ModelSpec] = {}
        self._by_name: dict[str, str] = {}
        for spec in models:
            self._by_id[spec.id] = spec
        for spec in self._by_id.values():
            for alias in spec.aliases:
                self._by_name.setdefault(alias, spec.id)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.resolve(name) is not None

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def resolve(self, name: str) -> ModelSpec | None:
        """The model for an id (``openai/o3-mini``) or alias (``o3-mini``), if known."""
        spec = self._by_id.get(name)
        if spec is None and (target := self._by_name.get(name)) is not None:
            spec = self._by_id[target]
        return spec

    def get(self, name: str) -> ModelSpec:
        """Like :meth:`resolve` but raises :class:`ConfigError` for an unknown name."""
        spec = self.resolve(name)
        if spec is None:
            raise ConfigError(f"unknown model {name!r}; known: {', '.join(sorted(self._by_id))}")
        return spec

    def merged(self, overrides: Mapping[str, Mapping[str, Any]]) -> Catalog:
        """A new catalog with *overrides* applied: new models added, known ones updated."""
        specs = dict(self._by_id)
        for model_id, fields in overrides.items():
            base = specs.get(model_id)
            data: dict[str, Any] = base.model_dump(exclude_defaults=True) if base else {}
            if base is None:
                provider = model_id.split("/", 1)[0] if "/" in model_id else ""
                data.update(id=model_id, provider=provider, model=model_id.split("/", 1)[-1])
            data.update(fields)
            try:
                specs[model_id] = ModelSpec.model_validate(data)
            except ValidationError as exc:
                loc, msg = first_validation_error(exc, f"models.{model_id!r}")
                raise ConfigError(msg, location=loc) from None
        return Catalog(specs.values())


def load_builtin_catalog() -> Catalog:
    """Read the catalog shipped with genrouter (no network)."""
    raw = resources.files("genrouter").joinpath("data/catalog.json").read_text("utf-8")
    entries = json.loads(raw)["models"]
    try:
        return Catalog(ModelSpec.model_validate(e) for e in entries)
    except ValidationError as exc:  # a broken package, not a user error
        loc, msg = first_validation_error(exc, "catalog.json")
        raise ConfigError(msg, location=loc) from exc
