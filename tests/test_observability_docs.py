"""docs/observability.md's example runs unchanged and prints the span tree and metrics shown."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parent.parent / "docs" / "observability.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)


def test_the_page_has_its_example() -> None:
    assert len(BLOCKS) == 1


def test_the_example_prints_spans_and_metrics() -> None:
    pytest.importorskip("opentelemetry.sdk")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.pop("GENROUTER_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", BLOCKS[0]],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=PAGE.parent,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    # The tree: the request span, then its two attempts, indented under it.
    assert lines[0] == "chat default [UNSET]"
    assert "  chat gpt-6-luna [ERROR]" in lines
    assert "  chat qwen3.6-plus [UNSET]" in lines
    assert "      error.type = ServerError" in lines
    for metric in (
        "gen_ai.client.operation.duration count=1",
        "gen_ai.client.token.usage count=1",
        "genrouter.attempts 1",
        "genrouter.fallbacks 1",
    ):
        assert any(line.startswith(metric) for line in lines), (metric, done.stdout)
