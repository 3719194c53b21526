"""Local-model defects found with issue 9: template errors fail over, ChatML gets its BOS,
an idle unload firing as a request arrives keeps the model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from genrouter import AsyncClient
from genrouter.config import ProviderConfig
from genrouter.providers.local import LocalProvider
from tests.local._tiny_gguf import CHATML_TEMPLATE, build_tiny_gguf
from tests.local.conftest import grammar, make_call, make_spec

pytest.importorskip("llama_cpp")

NO_SYSTEM_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
    "{{ message['content'] }}"
    "{% endfor %}"
)


async def test_a_chat_template_error_fails_over_to_the_next_candidate(tmp_path: Path) -> None:
    strict = build_tiny_gguf(tmp_path / "strict.gguf", chat_template=NO_SYSTEM_TEMPLATE)
    tolerant = build_tiny_gguf(tmp_path / "tolerant.gguf", chat_template=CHATML_TEMPLATE)
    config = {
        "models": {
            "local/strict": {"path": str(strict), "n_ctx": 512},
            "local/tolerant": {"path": str(tolerant), "n_ctx": 512},
        },
        "routes": {"default": {"candidates": ["local/strict", "local/tolerant"]}},
    }
    async with AsyncClient(config, env={}) as client:
        response = await client.chat.completions.create(
            model="default",
            messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            provider_options=grammar("ok"),
        )
    assert response.choices[0].message.content == "ok"
    assert response.route is not None
    assert [(a.model, a.outcome, a.error_type) for a in response.route.attempts] == [
        ("local/strict", "error", "LocalModelError"),
        ("local/tolerant", "ok", None),
    ]
    assert "no system role" in (response.route.attempts[0].error or "")


def test_a_chatml_prompt_gets_its_bos_token(tiny_gguf: Path) -> None:
    from llama_cpp import Llama

    from genrouter.providers.local._runtime import _needs_bos

    llm = Llama(str(tiny_gguf), vocab_only=True, verbose=False)
    try:
        bos = llm.detokenize([llm.token_bos()], special=True).decode()
        assert bos
        assert _needs_bos(llm, "<|im_start|>user\nhi<|im_end|>\n")
        assert not _needs_bos(llm, bos + "<|im_start|>user\nhi<|im_end|>\n")
    finally:
        llm.close()


async def test_an_idle_unload_firing_as_a_request_arrives_keeps_the_model(
    tiny_gguf: Path,
) -> None:
    provider = LocalProvider("local", ProviderConfig(type="local", idle_unload_s=60), env={})
    spec = make_spec(tiny_gguf)
    await provider.complete(make_call(spec, provider_options=grammar("x")))
    model = provider._model(spec)
    model._cancel_idle_unload()
    # A request arrives (its task is scheduled) and in the same turn the timer fires: the
    # request takes the lock first, the unload waits for it.
    request = asyncio.create_task(provider.complete(make_call(spec, provider_options=grammar("y"))))
    model._on_idle()
    result = await request
    assert result.choices[0].message.content == "y"
    if model._idle_task is not None:
        await model._idle_task
    assert provider.is_loaded(spec)  # not unloaded right after the request
    await provider.aclose()


async def test_a_raw_continuation_keeps_the_space_at_the_seam(tiny_qa_gguf: Path) -> None:
    provider = LocalProvider("local", ProviderConfig(type="local"), env={})
    spec = make_spec(tiny_qa_gguf)
    call = make_call(spec, "What is the capital of Japan?", provider_options=grammar(" Tokyo."))
    call.request = call.request.continued("The capital of Japan is")
    result = await provider.complete(call)
    assert result.choices[0].message.content == " Tokyo."  # not "Tokyo." ("isTokyo")
    assert provider.continuation_method == "raw"
    await provider.aclose()
