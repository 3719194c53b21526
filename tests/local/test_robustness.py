"""Bad input to a local model gives typed errors, never a crashed or hung process."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from genrouter.errors import InvalidRequestError
from genrouter.providers.local import LocalProvider
from tests.local.conftest import grammar, make_call, make_spec

pytest.importorskip("llama_cpp")


def test_an_unparsable_grammar_is_refused_not_a_crash(tiny_gguf: Path) -> None:
    # In a child process: before the fix, llama.cpp took the NULL grammar and the process died.
    code = textwrap.dedent(
        f"""
        import asyncio
        from genrouter.errors import InvalidRequestError
        from genrouter.providers.local import LocalProvider
        from genrouter.config import ProviderConfig
        from tests.local.conftest import make_call, make_spec

        async def main():
            provider = LocalProvider("local", ProviderConfig(type="local"), env={{}})
            call = make_call(
                make_spec({str(tiny_gguf)!r}),
                provider_options={{"local": {{"grammar": "root ::= ("}}}},
            )
            try:
                await provider.complete(call)
            except InvalidRequestError as exc:
                print("refused:", exc.param)
            finally:
                await provider.aclose()

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=Path.cwd()
    )
    assert done.returncode == 0, done.stderr[-1500:]
    assert "refused: provider_options.local.grammar" in done.stdout


async def test_a_schema_the_converter_cannot_handle_is_an_invalid_request(
    provider: LocalProvider, tiny_gguf: Path
) -> None:
    bad = {"type": "json_schema", "json_schema": {"schema": {"type": "string", "pattern": "(a"}}}
    with pytest.raises(InvalidRequestError):
        await provider.complete(make_call(make_spec(tiny_gguf), response_format=bad))
    not_a_mapping = {"type": "json_schema", "json_schema": "oops"}
    with pytest.raises(InvalidRequestError, match="json_schema"):
        await provider.complete(make_call(make_spec(tiny_gguf), response_format=not_a_mapping))


async def test_closing_the_provider_during_a_stream_ends_both(tiny_gguf: Path) -> None:
    from genrouter.config import ProviderConfig

    provider = LocalProvider("local", ProviderConfig(type="local"), env={})
    spec = make_spec(tiny_gguf)
    call = make_call(spec, max_tokens=380, provider_options=grammar("x" * 380))
    received: list[str] = []

    async def consume() -> None:
        async for chunk in provider.stream(call):
            for choice in chunk.choices:
                received.append(choice.delta.content or "")

    consumer = asyncio.create_task(consume())
    while not received:
        await asyncio.sleep(0.01)
    await asyncio.wait_for(provider.aclose(), 10)  # hung forever before the fix
    await asyncio.wait_for(consumer, 10)
    assert len("".join(received)) < 380
