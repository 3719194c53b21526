"""genrouter: one typed client for many language models, and a router that explains itself.

``import genrouter`` is cheap: names are loaded from their modules on first access, and no
vendor SDK, tokenizer or model is touched until a request needs it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from genrouter._version import __version__

if TYPE_CHECKING:
    from genrouter.catalog import Catalog, ModelSpec
    from genrouter.client import AsyncClient, AsyncHooks
    from genrouter.config import Config, load_config
    from genrouter.errors import (
        AllCandidatesFailedError,
        AttemptTimeoutError,
        AuthenticationError,
        BadRequestError,
        BillingError,
        BudgetExceededError,
        ConfigError,
        ContentFilteredError,
        ContextWindowExceededError,
        DeadlineExceededError,
        FirstTokenTimeoutError,
        GenRouterDeprecationWarning,
        GenRouterError,
        GenRouterWarning,
        InsufficientMemoryError,
        InvalidRequestError,
        LocalModelError,
        MediaError,
        ModelCacheWarning,
        ModelFileError,
        ModelRetiredError,
        NoCandidateError,
        NotFoundError,
        PermissionDeniedError,
        ProviderConnectionError,
        ProviderError,
        ProviderTimeoutError,
        RateLimitError,
        RedactedCause,
        ResponseFormatError,
        ServerError,
        StreamIdleTimeoutError,
        StreamInterruptedError,
        StructuredOutputError,
        UnsupportedInputError,
    )
    from genrouter.params import CompletionCreateParams, MessageParam
    from genrouter.providers.base import Provider, ProviderCall
    from genrouter.streaming import AsyncChatStream, ChatStream
    from genrouter.sync import Client
    from genrouter.types import (
        Attempt,
        CandidateEvaluation,
        ChatCompletion,
        ChatCompletionChunk,
        RouteDecision,
        RouteInfo,
        Usage,
    )

# Public name -> module that defines it. Kept in sync with __all__ by tests/test_public_api.py.
_EXPORTS: dict[str, str] = {
    "AsyncClient": "genrouter.client",
    "AsyncHooks": "genrouter.client",
    "Client": "genrouter.sync",
    "AsyncChatStream": "genrouter.streaming",
    "ChatStream": "genrouter.streaming",
    "Catalog": "genrouter.catalog",
    "ModelSpec": "genrouter.catalog",
    "Config": "genrouter.config",
    "load_config": "genrouter.config",
    "Provider": "genrouter.providers.base",
    "ProviderCall": "genrouter.providers.base",
    "Attempt": "genrouter.types",
    "CandidateEvaluation": "genrouter.types",
    "ChatCompletion": "genrouter.types",
    "CompletionCreateParams": "genrouter.params",
    "MessageParam": "genrouter.params",
    "ChatCompletionChunk": "genrouter.types",
    "RouteDecision": "genrouter.types",
    "RouteInfo": "genrouter.types",
    "Usage": "genrouter.types",
    **{
        name: "genrouter.errors"
        for name in (
            "AllCandidatesFailedError",
            "AttemptTimeoutError",
            "AuthenticationError",
            "BadRequestError",
            "BillingError",
            "BudgetExceededError",
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
            "ModelCacheWarning",
            "ModelFileError",
            "ModelRetiredError",
            "NoCandidateError",
            "NotFoundError",
            "PermissionDeniedError",
            "ProviderConnectionError",
            "ProviderError",
            "ProviderTimeoutError",
            "RateLimitError",
            "RedactedCause",
            "ResponseFormatError",
            "ServerError",
            "StreamIdleTimeoutError",
            "StreamInterruptedError",
            "StructuredOutputError",
            "UnsupportedInputError",
        )
    },
}

__all__ = [
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
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'genrouter' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
