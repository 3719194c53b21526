"""Find the local models that can run here, for the zero-configuration default route.

:func:`discover_local_models` looks, in this order, at

1. catalog models of a ``local`` provider whose ``path`` points at an existing file;
2. ``*.gguf`` files in each local provider's ``models_dir`` and in ``$GENROUTER_MODELS_DIR``
   (and one folder level below, where split models usually sit), each given the catalog
   profile its file name suggests (``tinyswallow`` → TinySwallow's settings,
   ``DeepSeek-R1`` / ``r1-distill`` → R1's ``<think>`` handling and sampling);
3. catalog models shipped as a Python package (the gemma demo) whose package is installed.

It only lists directories and stats files: it imports neither llama_cpp nor the model
packages (the demo package would write 253 MB when assembled).
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from genrouter.catalog import Catalog, ModelSpec
from genrouter.config import ProviderConfig
from genrouter.providers.local._files import is_gguf_name, shard_stem

__all__ = ["discover_local_models", "profile_for_filename"]

# File-name keywords → catalog profile, tried after an exact match on a catalog model name.
_KEYWORD_PROFILES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"tinyswallow"), "local/tinyswallow-1.5b"),
    (re.compile(r"r1-distill-qwen-1\.5b"), "local/deepseek-r1-distill-qwen-1.5b"),
    (re.compile(r"r1-distill-qwen-7b"), "local/deepseek-r1-distill-qwen-7b"),
    (re.compile(r"r1-distill-qwen-14b"), "local/deepseek-r1-distill-qwen-14b"),
    (re.compile(r"r1-distill-qwen-32b"), "local/deepseek-r1-distill-qwen-32b"),
    (re.compile(r"r1-distill-llama-8b"), "local/deepseek-r1-distill-llama-8b"),
    (re.compile(r"r1-distill-llama-70b"), "local/deepseek-r1-distill-llama-70b"),
    (re.compile(r"r1-distill"), "local/deepseek-r1-distill-qwen-1.5b"),
    (re.compile(r"deepseek-r1"), "local/deepseek-r1-1.58bit"),
)


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(" ", "-")


def profile_for_filename(filename: str, catalog: Catalog) -> ModelSpec | None:
    """The catalog spec whose settings suit a GGUF file of this name, if any."""
    name = _normalized(filename)
    for spec in catalog:
        if spec.local and spec.package is None and _normalized(spec.model) in name:
            return spec
    for pattern, model_id in _KEYWORD_PROFILES:
        if pattern.search(name) and (profile := catalog.resolve(model_id)) is not None:
            return profile
    return None


def _gguf_files(directory: Path) -> Iterator[Path]:
    """``*.gguf`` files in *directory* and its direct subdirectories (first shards only)."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return
    subdirs: list[Path] = []
    for entry in entries:
        try:
            if entry.is_file() and is_gguf_name(entry.name):
                yield Path(entry.path)
            elif entry.is_dir() and not entry.name.startswith("."):
                subdirs.append(Path(entry.path))
        except OSError:
            continue
    for subdir in subdirs:
        try:
            for entry in sorted(os.scandir(subdir), key=lambda e: e.name):
                if entry.is_file() and is_gguf_name(entry.name):
                    yield Path(entry.path)
        except OSError:
            continue


def _resolve(path: str, dirs: list[Path]) -> Path | None:
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return candidate if candidate.is_file() else None
    for base in dirs:
        if (base / candidate).is_file():
            return base / candidate
    return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _spec_for_file(path: Path, catalog: Catalog, provider: str) -> ModelSpec:
    stem = shard_stem(path.name)
    profile = profile_for_filename(path.name, catalog)
    fields = {
        "id": f"{provider}/{stem}",
        "provider": provider,
        "model": stem,
        "aliases": (),
        "path": str(path),
        "package": None,
        "local": True,
        "description": f"GGUF found at {path}"
        + (f" (settings of {profile.id})" if profile else ""),
    }
    return profile.model_copy(update=fields) if profile else ModelSpec.model_validate(fields)


def _scan(
    dirs: list[Path], catalog: Catalog, provider: str, seen_paths: set[Path], seen_ids: set[str]
) -> list[ModelSpec]:
    """Specs for the GGUF files in *dirs*: known models first, then bigger files."""
    scanned: list[tuple[bool, int, ModelSpec]] = []
    for directory in dirs:
        for path in _gguf_files(directory):
            real = path.resolve()
            spec = _spec_for_file(path, catalog, provider)
            if real in seen_paths or spec.id in seen_ids:
                continue
            seen_paths.add(real)
            seen_ids.add(spec.id)
            known = profile_for_filename(path.name, catalog) is not None
            scanned.append((known, _size(path), spec))
    scanned.sort(key=lambda item: (not item[0], -item[1]))
    return [spec for _, _, spec in scanned]


def discover_local_models(
    catalog: Catalog,
    providers: Mapping[str, ProviderConfig],
    env: Mapping[str, str],
    *,
    require_runtime: bool = True,
) -> list[ModelSpec]:
    """Local models that can run here, best first (see the module docstring).

    With ``require_runtime`` (the default) nothing is returned unless llama-cpp-python is
    installed, since no local model can run without it.
    """
    if require_runtime and importlib.util.find_spec("llama_cpp") is None:
        return []
    local_names = {name for name, cfg in providers.items() if cfg.type == "local"}
    dirs: list[Path] = []
    for name in sorted(local_names):
        if models_dir := providers[name].models_dir:
            dirs.append(Path(models_dir).expanduser())
    if env_dir := env.get("GENROUTER_MODELS_DIR"):
        dirs.append(Path(env_dir).expanduser())

    found: list[ModelSpec] = []
    seen_paths: set[Path] = set()
    seen_ids: set[str] = set()
    local_specs = [s for s in catalog if s.provider in local_names]

    for spec in local_specs:
        if spec.path and (path := _resolve(spec.path, dirs)) is not None:
            found.append(spec)
            seen_paths.add(path.resolve())
            seen_ids.add(spec.id)

    provider = "local" if "local" in local_names else min(local_names, default="local")
    found.extend(_scan(dirs, catalog, provider, seen_paths, seen_ids))

    for spec in local_specs:
        if (
            spec.package
            and not spec.path
            and spec.id not in seen_ids
            and importlib.util.find_spec(spec.package) is not None
        ):
            found.append(spec)
            seen_ids.add(spec.id)
    return found
