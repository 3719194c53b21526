"""Discovery of usable local models for the zero-config default."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from genrouter.catalog import load_builtin_catalog
from genrouter.config import ProviderConfig
from genrouter.providers.local.discovery import discover_local_models, profile_for_filename

GGUF_BYTES = b"GGUF" + b"\0" * 60


def test_files_get_the_profile_their_name_suggests() -> None:
    catalog = load_builtin_catalog()
    cases = {
        "tinyswallow-1.5b-instruct-q5_k_m.gguf": "local/tinyswallow-1.5b",
        "DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf": "local/deepseek-r1-distill-qwen-7b",
        "some-r1-distill-model.gguf": "local/deepseek-r1-distill-qwen-1.5b",
        "DeepSeek-R1-UD-IQ1_S-00001-of-00003.gguf": "local/deepseek-r1-1.58bit",
        "mistral-7b.gguf": None,
    }
    for name, expected in cases.items():
        profile = profile_for_filename(name, catalog)
        assert (profile.id if profile else None) == expected, name


def test_discovery_order_and_profiles(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    catalog = load_builtin_catalog().merged(
        {"local/tinyswallow-1.5b": {"path": "tinyswallow.gguf"}}
    )
    (tmp_path / "tinyswallow.gguf").write_bytes(GGUF_BYTES)
    (tmp_path / "mystery.gguf").write_bytes(GGUF_BYTES * 10)
    split = tmp_path / "DeepSeek-R1-UD-IQ1_S"
    split.mkdir()
    for i in (1, 2):
        (split / f"DeepSeek-R1-UD-IQ1_S-{i:05d}-of-00002.gguf").write_bytes(GGUF_BYTES)
    (tmp_path / "notes.txt").write_text("not a model")

    providers = {"local": ProviderConfig(type="local", models_dir=str(tmp_path))}
    found = discover_local_models(catalog, providers, {})
    ids = [spec.id for spec in found]
    # Configured catalog model first, then known profiles, then unknown files, then the demo.
    assert ids[:3] == ["local/tinyswallow-1.5b", "local/DeepSeek-R1-UD-IQ1_S", "local/mystery"]
    r1 = found[1]
    assert r1.reasoning_format == "think_tags"
    assert r1.system_prompt == "fold_into_user"
    assert r1.path is not None and r1.path.endswith("-00001-of-00002.gguf")
    assert found[2].reasoning_format == "none"
    assert ids[-1] == "local/gemma-3-270m"  # the demo package is installed here


def test_env_models_dir_is_scanned(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    (tmp_path / "TinySwallow-1.5B-Instruct-Q8_0.gguf").write_bytes(GGUF_BYTES)
    providers = {"local": ProviderConfig(type="local")}
    found = discover_local_models(
        load_builtin_catalog(), providers, {"GENROUTER_MODELS_DIR": str(tmp_path)}
    )
    swallow = next(s for s in found if s.id == "local/TinySwallow-1.5B-Instruct-Q8_0")
    assert swallow.defaults["repeat_penalty"] == 1.05


def test_nothing_is_usable_without_llama_cpp(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name)
    )
    providers = {"local": ProviderConfig(type="local")}
    assert discover_local_models(load_builtin_catalog(), providers, {}) == []


def test_discovery_imports_nothing_heavy_and_is_fast(tmp_path: Path) -> None:
    code = (
        "import sys, time, json\n"
        "from genrouter.catalog import load_builtin_catalog\n"
        "from genrouter.config import ProviderConfig\n"
        "from genrouter.providers.local.discovery import discover_local_models\n"
        "c = load_builtin_catalog()\n"
        "t = time.perf_counter()\n"
        "found = discover_local_models(c, {'local': ProviderConfig(type='local')}, {})\n"
        "print(json.dumps({'s': time.perf_counter() - t, 'ids': [s.id for s in found],\n"
        "  'mods': [m for m in sys.modules if m.startswith(('llama_cpp', 'gemma3'))]}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    result = json.loads(out.stdout)
    assert result["mods"] == []
    assert result["s"] < 0.5
