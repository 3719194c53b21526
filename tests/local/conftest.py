"""Fixtures for the local-model tests: tiny GGUF files built with the ``gguf`` package."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from genrouter.catalog import ModelSpec
from genrouter.config import ProviderConfig
from genrouter.providers.base import ProviderCall
from genrouter.providers.local import LocalProvider
from genrouter.request import ChatRequest, build_request
from tests.local._tiny_gguf import CHATML_TEMPLATE, THINK_OPEN_TEMPLATE, build_tiny_gguf


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny llama model with a ChatML template."""
    return build_tiny_gguf(
        tmp_path_factory.mktemp("gguf") / "tiny-chatml.gguf", chat_template=CHATML_TEMPLATE
    )


@pytest.fixture(scope="session")
def tiny_think_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model whose template ends the prompt with ``<think>`` (newer R1 style)."""
    return build_tiny_gguf(
        tmp_path_factory.mktemp("gguf") / "tiny-think.gguf", chat_template=THINK_OPEN_TEMPLATE
    )


@pytest.fixture(scope="session")
def tiny_qa_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model with no chat template (prompted Q/A style)."""
    return build_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-base.gguf")


def make_spec(path: Path | str | None, **fields: Any) -> ModelSpec:
    """A local ModelSpec for a test model."""
    data: dict[str, Any] = {
        "id": "local/tiny",
        "provider": "local",
        "model": "tiny",
        "local": True,
        "n_ctx": 512,
        "max_output_tokens": 400,
        "path": None if path is None else str(path),
    }
    data.update(fields)
    return ModelSpec.model_validate(data)


def make_call(spec: ModelSpec, content: str = "hi", **params: Any) -> ProviderCall:
    """A ProviderCall asking *spec* one question."""
    request: ChatRequest = build_request(
        {"model": spec.id, "messages": [{"role": "user", "content": content}], **params}
    )
    return ProviderCall(request=request, model=spec)


def grammar(text: str) -> dict[str, Any]:
    """provider_options that force the model to write exactly *text*."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return {"local": {"grammar": f'root ::= "{escaped}"'}}


@pytest.fixture
async def provider() -> AsyncIterator[LocalProvider]:
    """A LocalProvider that is closed after the test."""
    local = LocalProvider("local", ProviderConfig(type="local"), env={})
    yield local
    await local.aclose()


ProviderFactory = Callable[..., LocalProvider]
