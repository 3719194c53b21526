"""Provider model lists: fetch them on request, cache them, merge them over the catalog.

``genrouter models --refresh`` and :meth:`AsyncClient.refresh_models
<genrouter.AsyncClient.refresh_models>` read ``GET {base_url}/models`` from each keyed
provider (OpenAI's list carries ``shutdown_date``; DashScope's compatible mode and any
OpenAI-compatible server answer the same shape) and write them to one JSON file in the user's
cache directory: ``$GENROUTER_CACHE_DIR``, else ``$XDG_CACHE_HOME/genrouter``, else
``~/.cache/genrouter``; the file is ``models.json``. A client reads that file when it is built
and merges it over the built-in catalog (the configuration's ``[models]`` still win):

- a listed ``shutdown_date`` sets the model's ``shutdown_on`` (with the list as its source);
- a listed model the catalog lacks becomes a usable entry with conservative defaults (text
  only, 8,192-token context, no tools, unknown price) marked ``added_by_refresh``.

Nothing here runs at import or on the request path. A provider that cannot be reached keeps
its previous cache entry; the file is replaced atomically; a corrupt file is ignored with a
:class:`~genrouter.errors.ModelCacheWarning`.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from genrouter.catalog import Catalog, FactSource, ModelSpec
from genrouter.errors import ModelCacheWarning

if TYPE_CHECKING:
    import httpx2

__all__ = [
    "CACHE_FILE",
    "ListedModel",
    "ModelListCache",
    "ProviderModelList",
    "ProviderRefresh",
    "RefreshReport",
    "added_models",
    "cache_path",
    "empty_cache",
    "fetch_model_list",
    "load_cache",
    "merge_cache",
    "write_cache",
]

CACHE_FILE = "models.json"
CACHE_VERSION = 1
# Ids in a provider's list that are not chat models (embeddings, speech, images, moderation):
# they never become catalog entries.
_NON_CHAT_MARKERS = (
    "embed",
    "tts",
    "whisper",
    "dall-e",
    "moderation",
    "image",
    "transcribe",
    "realtime",
    "audio",
    "rerank",
    "asr",
    "sora",
)


class ListedModel(BaseModel):
    """One entry of a provider's ``/models`` answer (unknown fields ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1)
    owned_by: str | None = None
    shutdown_date: date | None = None


class ProviderModelList(BaseModel):
    """What one provider listed, and when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    fetched_on: date
    models: tuple[ListedModel, ...] = ()


class ModelListCache(BaseModel):
    """The cache file: provider name -> its last successful list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = CACHE_VERSION
    providers: dict[str, ProviderModelList] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProviderRefresh:
    """The outcome of refreshing one provider: ``error`` is set when its list was not read."""

    provider: str
    url: str
    listed: int = 0
    added: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """What :meth:`AsyncClient.refresh_models` did, per provider, and where it wrote."""

    path: Path
    providers: tuple[ProviderRefresh, ...] = field(default_factory=tuple)
    written: bool = False

    @property
    def ok(self) -> bool:
        """Whether every provider's list was read."""
        return all(p.error is None for p in self.providers)

    def summary(self) -> str:
        """A few human-readable lines (what the CLI prints)."""
        lines = []
        for p in self.providers:
            if p.error is not None:
                lines.append(f"{p.provider}: not refreshed ({p.error}); previous list kept")
            else:
                added = f", added {', '.join(p.added)}" if p.added else ""
                lines.append(f"{p.provider}: {p.listed} models listed{added}")
        if not self.providers:
            lines.append("no provider has a key set: nothing to refresh")
        lines.append(f"cache: {self.path}" + ("" if self.written else " (unchanged)"))
        return "\n".join(lines)


def cache_path(env: Mapping[str, str]) -> Path:
    """Where the model-list cache lives for this environment."""
    if configured := env.get("GENROUTER_CACHE_DIR"):
        return Path(configured).expanduser() / CACHE_FILE
    if xdg := env.get("XDG_CACHE_HOME"):
        return Path(xdg).expanduser() / "genrouter" / CACHE_FILE
    return Path.home() / ".cache" / "genrouter" / CACHE_FILE


def load_cache(path: Path) -> ModelListCache | None:
    """The cache at *path*; ``None`` if absent; ignored with a warning if unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        warnings.warn(
            f"cannot read the model cache {str(path)!r} ({exc.strerror}); using the built-in "
            "catalog",
            ModelCacheWarning,
            stacklevel=3,
        )
        return None
    try:
        cache = ModelListCache.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the file"
        warnings.warn(
            f"ignoring the corrupt model cache {str(path)!r} ({where}: {first['msg']}); using the "
            "built-in catalog; run `genrouter models --refresh` to rebuild it",
            ModelCacheWarning,
            stacklevel=3,
        )
        return None
    if cache.version != CACHE_VERSION:
        warnings.warn(
            f"ignoring the model cache {str(path)!r}: version {cache.version}, expected "
            f"{CACHE_VERSION}",
            ModelCacheWarning,
            stacklevel=3,
        )
        return None
    return cache


def write_cache(path: Path, cache: ModelListCache) -> None:
    """Replace *path* atomically (a temporary file in the same folder, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".models-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(cache.model_dump_json(indent=1))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


async def fetch_model_list(
    http: httpx2.AsyncClient, url: str, headers: Mapping[str, str], *, timeout_s: float
) -> tuple[ListedModel, ...]:
    """``GET`` *url* and parse an OpenAI-style ``{"data": [{"id": ...}, ...]}`` answer.

    Raises ``OSError``-like ``httpx2`` errors, or ``ValueError`` for a bad status or body;
    the caller turns either into a :class:`ProviderRefresh` error line.
    """
    response = await http.get(url, headers=dict(headers), timeout=timeout_s)
    if response.status_code != 200:
        raise ValueError(f"HTTP {response.status_code}")
    try:
        payload = response.json()
    except ValueError as exc:
        raise ValueError("the answer is not JSON") from exc
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise ValueError("the answer has no 'data' list")
    listed = []
    for entry in data:
        try:
            listed.append(ListedModel.model_validate(entry))
        except ValidationError:
            continue  # one odd entry should not hide the rest
    return tuple(listed)


def _is_chat_model(model_id: str) -> bool:
    lowered = model_id.lower()
    return not any(marker in lowered for marker in _NON_CHAT_MARKERS)


def _index(catalog: Catalog) -> dict[tuple[str, str], ModelSpec]:
    """Catalog entries by ``(provider, name the provider uses)``, aliases included."""
    index: dict[tuple[str, str], ModelSpec] = {}
    for spec in catalog:
        for name in (spec.model, spec.name, *spec.aliases):
            index.setdefault((spec.provider, name), spec)
    return index


def merge_cache(catalog: Catalog, cache: ModelListCache, providers: Iterable[str]) -> Catalog:
    """*catalog* with *cache* applied for the configured *providers* (others are skipped)."""
    configured = set(providers)
    index = _index(catalog)
    updated: dict[str, ModelSpec] = {s.id: s for s in catalog}
    for provider, listing in cache.providers.items():
        if provider not in configured:
            continue
        for listed in listing.models:
            known = index.get((provider, listed.id))
            if known is not None:
                if listed.shutdown_date is not None and listed.shutdown_date != known.shutdown_on:
                    source = FactSource(
                        url=listing.url,
                        checked_on=listing.fetched_on,
                        verified=True,
                        facts=("shutdown_on",),
                        note=f"shutdown_date of {listed.id} in the provider's model list",
                    )
                    current = updated[known.id]
                    updated[known.id] = current.model_copy(
                        update={
                            "shutdown_on": listed.shutdown_date,
                            "sources": (*current.sources, source),
                        }
                    )
                continue
            if not _is_chat_model(listed.id):
                continue
            model_id = f"{provider}/{listed.id}"
            if model_id in updated:
                continue
            updated[model_id] = ModelSpec(
                id=model_id,
                provider=provider,
                model=listed.id,
                description=(
                    f"listed by {provider} on {listing.fetched_on}; not in genrouter's catalog, "
                    "so limits are conservative defaults and the price is unknown"
                ),
                shutdown_on=listed.shutdown_date,
                added_by_refresh=True,
                sources=(
                    FactSource(
                        url=listing.url,
                        checked_on=listing.fetched_on,
                        verified=True,
                        facts=("id", "shutdown_on") if listed.shutdown_date else ("id",),
                    ),
                ),
            )
    return Catalog(updated.values())


def added_models(catalog: Catalog, cache: ModelListCache, provider: str) -> tuple[str, ...]:
    """Ids that *cache* adds for *provider* on top of *catalog* (for the refresh report)."""
    index = _index(catalog)
    listing = cache.providers.get(provider)
    if listing is None:
        return ()
    return tuple(
        f"{provider}/{m.id}"
        for m in listing.models
        if (provider, m.id) not in index and _is_chat_model(m.id)
    )


def empty_cache() -> ModelListCache:
    """A cache with nothing in it."""
    return ModelListCache()
