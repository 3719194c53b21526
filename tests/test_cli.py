"""The genrouter command, run in-process against the fake server."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from genrouter.cli import main
from genrouter.testing import FakeLLMServer, Reply

pytestmark = pytest.mark.usefixtures("catalog_before_2026_retirements")  # names o3-mini etc.


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


@pytest.fixture
def config_file(tmp_path: Path, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-cli-test-123456")
    path = tmp_path / "genrouter.json"
    path.write_text(
        json.dumps(
            {
                "providers": {
                    "dashscope": {"type": "dashscope", "base_url": server.dashscope_base_url}
                },
                "routes": {
                    "default": {"candidates": ["openai/o3-mini", "dashscope/qwen-max"]},
                    "vision": {"candidates": ["dashscope/qwen-vl-max"]},
                },
                "rules": [{"when": {"input_modality": "image"}, "route": "vision"}],
            }
        )
    )
    return path


def test_chat_streams_the_answer_to_stdout_and_the_route_to_stderr(
    config_file: Path, server: FakeLLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(Reply(chunks=["Tok", "yo"]), model="qwen-max")
    assert main(["--config", str(config_file), "chat", "--explain", "Capital", "of", "Japan?"]) == 0
    out, err = capsys.readouterr()
    assert out == "Tokyo\n"
    assert "answered by dashscope/qwen-max" in err
    assert "openai/o3-mini: no credentials: set OPENAI_API_KEY" in err
    assert "plan: dashscope/qwen-max" in err  # the --explain table
    assert server.requests[0].body["messages"][0]["content"] == "Capital of Japan?"


def test_chat_reads_stdin_and_takes_options(
    config_file: Path,
    server: FakeLLMServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("Summarise this text.\n"))
    argv = ["--config", str(config_file), "chat", "--no-stream", "-q", "--max-tokens", "9"]
    assert main([*argv, "--system", "Be brief."]) == 0
    out, err = capsys.readouterr()
    assert out == "echo: Summarise this text.\n" and err == ""
    body = server.requests[0].body
    assert body["max_tokens"] == 9
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_route_explain_is_a_dry_run(
    config_file: Path, server: FakeLLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--config", str(config_file), "route", "--explain", "What is this?"]
    assert main([*argv, "--image", "https://example.com/cat.png"]) == 0
    out, _ = capsys.readouterr()
    assert "route 'vision' (rule rules[0])" in out
    assert "plan: dashscope/qwen-vl-max" in out
    assert server.requests == []


def test_models_lists_what_is_usable(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config_file), "models"]) == 0
    out, _ = capsys.readouterr()
    rows = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert "no: no credentials: set OPENAI_API_KEY" in rows["openai/o3-mini"]
    assert rows["dashscope/qwen-max"].rstrip().endswith("yes")
    assert "image,text,video" in rows["dashscope/qwen-vl-max"]


def test_errors_are_one_readable_line_and_exit_1(
    config_file: Path, server: FakeLLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(*[Reply.error(500)] * 3, model="qwen-max")
    assert main(["--config", str(config_file), "chat", "-m", "dashscope/qwen-max", "hi"]) == 1
    _, err = capsys.readouterr()
    assert err.startswith("genrouter: AllCandidatesFailedError: every candidate failed")
    assert "sk-cli-test" not in err


def test_a_bad_config_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "genrouter.toml"
    path.write_text('[routes.default]\ncandidates = ["o3-mini"]\nobjective = "fast"\n')
    assert main(["--config", str(path), "models"]) == 2  # usage/config errors exit 2
    _, err = capsys.readouterr()
    assert "ConfigError: routes.default.objective:" in err
