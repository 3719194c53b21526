"""One usability verdict: `models`, `route --explain` and `chat` agree (issue 15).

A configured local model whose file is missing was "no model file found" in ``genrouter
models``, eligible in ``route --explain``, and a load failure in ``chat``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import genrouter.routing.planner as planner_module
from genrouter import AsyncClient, MessageParam, NoCandidateError
from genrouter.catalog import ModelSpec
from genrouter.cli import main
from genrouter.config import ProviderConfig
from genrouter.usability import LOCAL_RUNTIME_MISSING, local_model_path, unusable_reason

HI: list[MessageParam] = [{"role": "user", "content": "hi"}]


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend llama-cpp-python is installed: the verdict then turns on the file alone."""
    monkeypatch.setattr(planner_module, "local_runtime_installed", lambda: True)


def _config_file(tmp_path: Path, model_path: Path) -> Path:
    path = tmp_path / "genrouter.json"
    path.write_text(
        json.dumps(
            {
                "providers": {"local": {"type": "local"}},
                "models": {"local/mine": {"path": str(model_path), "local": True}},
                "routes": {"default": {"candidates": ["local/mine"]}},
            }
        )
    )
    return path


def _three_answers(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[str, str, tuple[int, str]]:
    assert main(["--config", str(config), "models"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    # Exit 3: the route has no eligible candidate (docs/cli.md), and the table says why.
    assert main(["--config", str(config), "route", "-m", "local/mine", "hi"]) == 3
    explained = capsys.readouterr().out
    status = main(["--config", str(config), "chat", "-m", "local/mine", "--no-stream", "hi"])
    return rows["local/mine"], explained, (status, capsys.readouterr().err)


@pytest.mark.usefixtures("runtime")
def test_a_missing_model_file_gets_one_answer_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "mine.gguf"
    reason = f"model file not found: {missing}"
    listed, explained, (status, chat_err) = _three_answers(_config_file(tmp_path, missing), capsys)
    assert listed.rstrip().endswith(f"no: {reason}")
    assert reason in explained
    assert status == 3 and "NoCandidateError" in chat_err and reason in chat_err


@pytest.mark.usefixtures("runtime")
async def test_the_client_api_agrees_with_itself(tmp_path: Path) -> None:
    missing = tmp_path / "mine.gguf"
    async with AsyncClient(json.loads(_config_file(tmp_path, missing).read_text())) as client:
        status = next(s for s in client.models() if s.spec.id == "local/mine")
        candidate = client.route(model="local/mine", messages=HI).candidates[0]
        assert not status.usable
        assert candidate.excluded_because == status.reason == f"model file not found: {missing}"
        with pytest.raises(NoCandidateError, match="model file not found"):
            await client.chat.completions.create(model="local/mine", messages=HI)
        missing.write_bytes(b"GGUF")  # now present: usable in both views
        status = next(s for s in client.models() if s.spec.id == "local/mine")
        candidate = client.route(model="local/mine", messages=HI).candidates[0]
        assert status.usable and status.reason is None and candidate.excluded_because is None


def test_without_the_runtime_every_view_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planner_module, "local_runtime_installed", lambda: False)
    present = tmp_path / "mine.gguf"
    present.write_bytes(b"GGUF")
    listed, explained, (status, chat_err) = _three_answers(_config_file(tmp_path, present), capsys)
    assert listed.rstrip().endswith(f"no: {LOCAL_RUNTIME_MISSING}")
    assert LOCAL_RUNTIME_MISSING in explained and LOCAL_RUNTIME_MISSING in chat_err
    assert status == 3  # no model available (docs/cli.md)


def test_the_verdict_function(tmp_path: Path) -> None:
    config = ProviderConfig(type="local", models_dir=str(tmp_path))
    (tmp_path / "rel.gguf").write_bytes(b"GGUF")

    def spec(**fields: object) -> ModelSpec:
        return ModelSpec.model_validate(
            {"id": "local/x", "provider": "local", "model": "x", **fields}
        )

    def verdict(s: ModelSpec, cfg: ProviderConfig = config) -> str | None:
        return unusable_reason(s, cfg, {}, missing_credentials="no key", runtime_installed=True)

    assert local_model_path(spec(path="rel.gguf"), config, {}) == tmp_path / "rel.gguf"
    assert verdict(spec(path="rel.gguf", local=True)) is None
    assert verdict(spec(path="other.gguf")) == f"model file not found: {tmp_path / 'other.gguf'}"
    assert verdict(spec(package="surely_not_installed_pkg")) == (
        "model package 'surely_not_installed_pkg' is not installed: "
        "pip install surely-not-installed-pkg"
    )
    assert "set `path`" in (verdict(spec()) or "")
    assert verdict(spec(), ProviderConfig(type="openai")) == "no key"
