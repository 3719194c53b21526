"""A custom provider written only from docs/providers.md works, streams included (issue 15).

The provider is not written here: the test runs the code block of the docs' "A custom
provider, complete" section, so the docs cannot drift from what genrouter accepts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from genrouter import AsyncClient, ChatCompletion
from genrouter.providers.base import Provider, aclose_if_possible

DOC = Path(__file__).resolve().parent.parent / "docs" / "providers.md"


def _docs_code() -> dict[str, Any]:
    text = DOC.read_text("utf-8")
    match = re.search(r"<!-- tested: custom-provider -->\n```python\n(.*?)\n```", text, re.S)
    assert match is not None, "docs/providers.md lost its tested custom-provider block"
    namespace: dict[str, Any] = {"__name__": "docs_custom_provider"}
    exec(compile(match.group(1), str(DOC), "exec"), namespace)
    return namespace


@pytest.fixture
def docs() -> dict[str, Any]:
    return _docs_code()


async def test_the_documented_provider_completes(docs: dict[str, Any]) -> None:
    client: AsyncClient = docs["client"]
    async with client:
        response = await client.chat.completions.create(
            model="mine/m1", messages=[{"role": "user", "content": "hello there"}]
        )
    assert isinstance(response, ChatCompletion)
    assert response.choices[0].message.content == "echo: hello there"
    assert response.route is not None and response.route.model == "mine/m1"


async def test_the_documented_provider_streams_without_aclose(docs: dict[str, Any]) -> None:
    provider = docs["EchoProvider"]()
    assert isinstance(provider, Provider)
    assert not hasattr(docs["_Chunks"]([]), "aclose")  # the docs' stream is a bare iterator
    client = AsyncClient(
        {
            "providers": {"mine": {"type": "custom"}},
            "models": {"mine/m1": {"context_window": 8192}},
        },
        env={},
        providers={"mine": provider},
    )
    async with client:
        stream = await client.chat.completions.create(
            model="mine/m1", messages=[{"role": "user", "content": "a b c"}], stream=True
        )
        async with stream:
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "echo: a b c "
        # Breaking out early closes the stream too, with nothing to call aclose on.
        stream = await client.chat.completions.create(
            model="mine/m1", messages=[{"role": "user", "content": "x y z"}], stream=True
        )
        async with stream:
            async for _chunk in stream:
                break
    assert stream.route is not None and stream.route.model == "mine/m1"


async def test_aclose_if_possible_closes_generators_and_skips_bare_iterators(
    docs: dict[str, Any],
) -> None:
    closed: list[str] = []

    async def generator() -> Any:
        try:
            yield 1
            yield 2
        finally:
            closed.append("generator")

    gen = generator()
    assert await gen.__anext__() == 1
    await aclose_if_possible(gen)
    assert closed == ["generator"]

    class SyncClose:
        def __aiter__(self) -> SyncClose:
            return self

        async def __anext__(self) -> int:
            raise StopAsyncIteration

        def aclose(self) -> None:
            closed.append("sync")

    await aclose_if_possible(SyncClose())
    await aclose_if_possible(docs["_Chunks"]([]))  # no aclose: nothing to do, no error
    assert closed == ["generator", "sync"]
