"""The public surface: pinned exports, cheap imports, no shared state between clients."""

from __future__ import annotations

import subprocess
import sys

import genrouter
from genrouter.params import MessageParam

EXPECTED_ALL = {
    "AllCandidatesFailedError",
    "AsyncChatStream",
    "AsyncClient",
    "AsyncHooks",
    "Attempt",
    "AttemptTimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BillingError",
    "BudgetExceededError",
    "CandidateEvaluation",
    "Catalog",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatStream",
    "Client",
    "CompletionCreateParams",
    "Config",
    "ConfigError",
    "ContentFilteredError",
    "ContextWindowExceededError",
    "DeadlineExceededError",
    "FirstTokenTimeoutError",
    "GenRouterDeprecationWarning",
    "GenRouterError",
    "GenRouterWarning",
    "InsufficientMemoryError",
    "InvalidRequestError",
    "LocalModelError",
    "MediaError",
    "MessageParam",
    "ModelCacheWarning",
    "ModelFileError",
    "ModelRetiredError",
    "ModelSpec",
    "NoCandidateError",
    "NotFoundError",
    "PermissionDeniedError",
    "Provider",
    "ProviderCall",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "RateLimitError",
    "RedactedCause",
    "ResponseFormatError",
    "RouteDecision",
    "RouteInfo",
    "ServerError",
    "StreamIdleTimeoutError",
    "StreamInterruptedError",
    "StructuredOutputError",
    "UnsupportedInputError",
    "Usage",
    "__version__",
    "load_config",
}


def test_all_is_pinned_and_every_name_resolves() -> None:
    assert set(genrouter.__all__) == EXPECTED_ALL
    for name in genrouter.__all__:
        assert getattr(genrouter, name) is not None, name


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


HEAVY = {"openai", "dashscope", "llama_cpp", "tiktoken", "httpx2", "pydantic"}


def test_import_genrouter_loads_nothing_heavy() -> None:
    loaded = _modules_after("import genrouter")
    assert not (HEAVY & loaded), HEAVY & loaded


def test_building_a_client_loads_no_vendor_sdk() -> None:
    loaded = _modules_after(
        "from genrouter import AsyncClient, Client\n"
        "c = AsyncClient({'routes': {'default': {'candidates': ['o3-mini']}}}, env={})"
    )
    assert not ({"openai", "dashscope", "llama_cpp", "tiktoken"} & loaded)


def test_two_clients_share_no_state() -> None:
    a = genrouter.AsyncClient({"routes": {"default": {"candidates": ["o3-mini"]}}}, env={})
    b = genrouter.AsyncClient({"routes": {"default": {"candidates": ["o3-mini"]}}}, env={})
    a.health.circuit("openai/o3-mini").record_failure(0)
    assert b.health.circuits == {}
    assert a.health is not b.health


def test_clients_can_share_a_token_counter_explicitly() -> None:
    from genrouter.tokens import TokenCounter

    counter = TokenCounter()
    config = {"routes": {"default": {"candidates": ["o3-mini"]}}}
    a = genrouter.AsyncClient(config, env={}, token_counter=counter)
    b = genrouter.AsyncClient(config, env={}, token_counter=counter)
    hello: list[MessageParam] = [{"role": "user", "content": "hello"}]
    assert a.route(messages=hello).prompt_tokens == b.route(messages=hello).prompt_tokens > 0
    assert a._token_counter() is b._token_counter() is counter
