"""The gateway's documentation runs: README's client snippet, docs/gateway.md's examples.

The snippets that talk to a gateway are ```py blocks (tests/test_readme.py runs the ```python
ones with no gateway listening); here each runs unchanged but for the port, against a gateway
on a free port whose providers are fake servers.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from genrouter.server.settings import load_gateway
from genrouter.testing import FakeLLMServer
from tests.gateway_helpers import in_process_gateway, two_upstreams

ROOT = Path(__file__).resolve().parent.parent
PAGES = {
    "README.md": (ROOT / "README.md").read_text(encoding="utf-8"),
    "docs/gateway.md": (ROOT / "docs" / "gateway.md").read_text(encoding="utf-8"),
}
SNIPPETS = [
    (name, block)
    for name, text in PAGES.items()
    for block in re.findall(r"```py\n(.*?)```", text, re.S)
]


def test_the_readme_shows_the_gateway_in_three_lines() -> None:
    readme = PAGES["README.md"]
    assert "pip install 'genrouter[server]'" in readme
    assert "genrouter serve --config" in readme
    assert any(name == "README.md" and "OpenAI(base_url=" in b for name, b in SNIPPETS)


@pytest.mark.parametrize(("page", "block"), SNIPPETS)
def test_client_snippet_runs_against_a_gateway(page: str, block: str) -> None:
    assert "http://127.0.0.1:8000/v1" in block
    with FakeLLMServer() as up:
        config = two_upstreams(up.openai_base_url, up.openai_base_url)
        with in_process_gateway(config) as gw, contextlib.redirect_stdout(io.StringIO()):
            code = block.replace("http://127.0.0.1:8000/v1", gw.base_url)
            exec(compile(code, page, "exec"), {"__name__": "__doc_snippet__"})
        assert up.requests, "the snippet reached the upstream through the gateway"


def test_gateway_md_configuration_loads(tmp_path: Path) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", PAGES["docs/gateway.md"], re.S)
    assert blocks
    for number, block in enumerate(blocks):
        path = tmp_path / f"gateway-{number}.toml"
        path.write_text(block, encoding="utf-8")
        loaded = load_gateway(path)
        assert loaded.config.routes
        assert loaded.settings.keys and loaded.settings.keys[0].tenant == "team-a"
