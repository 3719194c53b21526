"""Typed errors for bad model files, path resolution and the memory check (no llama.cpp)."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from genrouter.config import ProviderConfig
from genrouter.errors import InsufficientMemoryError, LocalModelError, ModelFileError
from genrouter.providers.local import LocalProvider
from genrouter.providers.local._files import (
    ModelFiles,
    check_memory,
    check_model_files,
    mem_available_from_meminfo,
    resolve_model_path,
)
from tests.local.conftest import make_call, make_spec

GGUF_BYTES = b"GGUF" + b"\0" * 60


def _provider(**kwargs: object) -> LocalProvider:
    return LocalProvider("local", ProviderConfig(type="local"), env={}, **kwargs)  # type: ignore[arg-type]


async def _complete_error(provider: LocalProvider, path: Path) -> ModelFileError:
    with pytest.raises(ModelFileError) as info:
        await provider.complete(make_call(make_spec(path)))
    await provider.aclose()
    return info.value


async def test_missing_file_names_the_path(tmp_path: Path) -> None:
    error = await _complete_error(_provider(), tmp_path / "nope.gguf")
    assert "nope.gguf" in str(error)
    assert error.path == str(tmp_path / "nope.gguf")
    assert error.model == "tiny"


async def test_directory_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "model.gguf"
    folder.mkdir()
    error = await _complete_error(_provider(), folder)
    assert "is a directory" in str(error)


async def test_non_gguf_file_is_refused_before_llama_sees_it(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"<html>not a model</html>")
    error = await _complete_error(_provider(), bogus)
    assert "not a GGUF file" in str(error)
    assert str(bogus) in str(error)


def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked.gguf"
    locked.write_bytes(GGUF_BYTES)

    def deny(path: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(path))

    with pytest.raises(ModelFileError, match="cannot read") as info:
        check_model_files(locked, read_magic=deny)
    assert info.value.path == str(locked)
    assert isinstance(info.value.__cause__, PermissionError)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
async def test_unreadable_file_by_mode(tmp_path: Path) -> None:
    locked = tmp_path / "locked.gguf"
    locked.write_bytes(GGUF_BYTES)
    locked.chmod(0)
    try:
        error = await _complete_error(_provider(), locked)
    finally:
        locked.chmod(0o600)
    assert "cannot read" in str(error)


def test_split_model_loads_from_first_shard_and_needs_every_shard(tmp_path: Path) -> None:
    names = [f"R1-UD-IQ1_S-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]
    for name in names:
        (tmp_path / name).write_bytes(GGUF_BYTES)
    files = check_model_files(tmp_path / names[1])
    assert files.path == tmp_path / names[0]
    assert len(files.shards) == 3
    assert files.size_bytes == 3 * len(GGUF_BYTES)

    (tmp_path / names[2]).unlink()
    with pytest.raises(ModelFileError, match="missing 1 of 3 shards") as info:
        check_model_files(tmp_path / names[0])
    assert names[2] in str(info.value)


async def test_memory_check_uses_injected_mem_available(tmp_path: Path) -> None:
    model = tmp_path / "big.gguf"
    model.write_bytes(GGUF_BYTES)
    provider = _provider(memory_probe=lambda: 100 * 1024 * 1024)  # 100 MiB free
    with pytest.raises(InsufficientMemoryError, match="GiB is available") as info:
        await provider.complete(make_call(make_spec(model)))
    assert info.value.path == str(model)
    await provider.aclose()


def test_memory_check_rules() -> None:
    files = ModelFiles(path=Path("/m.gguf"), shards=(Path("/m.gguf"),), size_bytes=8 * 1024**3)
    with pytest.raises(InsufficientMemoryError):
        check_memory(files, 4 * 1024**3, n_gpu_layers=0)
    # Enough memory, unknown memory, or layers on a GPU: no objection.
    for available, layers in ((64 * 1024**3, 0), (None, 0), (1024, -1)):
        check_memory(files, available, n_gpu_layers=layers)  # raises if it objects


def test_meminfo_parsing() -> None:
    text = "MemTotal:  16000000 kB\nMemFree:  1000 kB\nMemAvailable:   2048 kB\n"
    assert mem_available_from_meminfo(text) == 2048 * 1024
    assert mem_available_from_meminfo("MemTotal: 1 kB\n") is None


def test_relative_path_resolution_order(tmp_path: Path) -> None:
    configured, from_env = tmp_path / "configured", tmp_path / "env"
    configured.mkdir()
    from_env.mkdir()
    (from_env / "m.gguf").write_bytes(GGUF_BYTES)
    spec = make_spec("m.gguf")
    config = ProviderConfig(type="local", models_dir=str(configured))
    env = {"GENROUTER_MODELS_DIR": str(from_env)}
    assert resolve_model_path(spec, config, env) == from_env / "m.gguf"
    (configured / "m.gguf").write_bytes(GGUF_BYTES)
    assert resolve_model_path(spec, config, env) == configured / "m.gguf"
    # Found nowhere: the first candidate, so the error names it.
    assert resolve_model_path(make_spec("x.gguf"), config, env) == configured / "x.gguf"


def test_home_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    spec = make_spec("~/models/m.gguf")
    assert resolve_model_path(spec, ProviderConfig(type="local"), {}) == tmp_path / "models/m.gguf"


def test_package_is_assembled(tmp_path: Path) -> None:
    target = tmp_path / "demo.gguf"
    module = types.SimpleNamespace(assemble=lambda: target)
    spec = make_spec(None, package="demo_pkg")
    found = resolve_model_path(
        spec, ProviderConfig(type="local"), {}, import_module=lambda name: module
    )
    assert found == target


def test_missing_package_says_how_to_install() -> None:
    def missing(name: str) -> object:
        raise ModuleNotFoundError(name)

    spec = make_spec(None, package="some_model_gguf")
    with pytest.raises(LocalModelError, match="pip install some-model-gguf"):
        resolve_model_path(spec, ProviderConfig(type="local"), {}, import_module=missing)


def test_no_path_and_no_package() -> None:
    with pytest.raises(ModelFileError, match="set `path`"):
        resolve_model_path(make_spec(None), ProviderConfig(type="local"), {})


async def test_missing_llama_cpp_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(GGUF_BYTES)
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    provider = _provider()
    with pytest.raises(LocalModelError) as info:
        await provider.complete(make_call(make_spec(model)))
    await provider.aclose()
    message = str(info.value)
    assert "pip install 'genrouter[local]'" in message
    assert "-DGGML_NATIVE=OFF" in message
    assert isinstance(info.value.__cause__, ImportError)


async def test_load_failure_inside_llama_is_typed(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(GGUF_BYTES)

    def failing_llama(**kwargs: object) -> object:
        raise ValueError(f"Failed to load model from file: {kwargs['model_path']}")

    provider = _provider(llama_factory=failing_llama)
    with pytest.raises(LocalModelError, match="could not load") as info:
        await provider.complete(make_call(make_spec(model)))
    await provider.aclose()
    assert isinstance(info.value.__cause__, ValueError)
    assert info.value.path == str(model)
