"""README.md's Python snippets run, unchanged, against the fake server (the README stays true).

Each ```python block is executed as a script (top-level ``await`` allowed) with
``$GENROUTER_CONFIG`` pointing every provider at a :class:`FakeLLMServer` and fake keys set.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from genrouter.testing import FakeLLMServer

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
# Pages whose snippets start their own fake server.
DOC_PAGES = [ROOT / "docs" / "openai-sdk.md"]
DOC_BLOCKS = [
    (page.name, block)
    for page in DOC_PAGES
    for block in re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
]


@pytest.fixture
def fake_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        config = tmp_path / "genrouter.toml"
        config.write_text(
            f"""
[providers.openai]
type = "openai"
base_url = "{server.openai_base_url}"

[providers.dashscope]
type = "dashscope"
base_url = "{server.dashscope_base_url}"

[routes.default]
candidates = ["openai/gpt-6-luna", "dashscope/qwen3.6-plus"]
""",
            encoding="utf-8",
        )
        monkeypatch.setenv("GENROUTER_CONFIG", str(config))
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-test")
        monkeypatch.chdir(tmp_path)
        yield server


def test_readme_has_python_snippets() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_snippet_runs(index: int, fake_world: FakeLLMServer) -> None:
    code = compile(
        BLOCKS[index], f"README.md[python #{index}]", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    )
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    result = eval(code, namespace)
    if inspect.iscoroutine(result):
        asyncio.run(result)
    # A snippet that calls a model reached the fake server with a valid request.
    if "create(" in BLOCKS[index]:
        assert fake_world.requests
    for request in fake_world.requests:
        assert request.body["messages"], request


@pytest.mark.parametrize(("page", "block"), DOC_BLOCKS)
def test_doc_snippet_runs(page: str, block: str) -> None:
    code = compile(block, page, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, {"__name__": "__doc_snippet__"})
    if inspect.iscoroutine(result):
        asyncio.run(result)


def test_readme_configuration_loads_as_written(tmp_path: Path) -> None:
    """The README's TOML block is a valid configuration (every snippet in the README runs)."""
    from genrouter.config import load_config

    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "the README shows a configuration"
    for number, block in enumerate(blocks):
        path = tmp_path / f"readme-{number}.toml"
        path.write_text(block, encoding="utf-8")
        config = load_config(path)
        assert config.routes, f"README TOML block {number} defines no route"
