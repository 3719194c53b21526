"""Providers: the adapters that reach a vendor API, a compatible server or a local model.

Each module is imported only when a client first needs that provider kind, so
``import genrouter`` stays cheap and optional extras stay optional.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from genrouter.errors import ConfigError
from genrouter.providers.base import Provider, ProviderCall

if TYPE_CHECKING:
    import httpx2

    from genrouter.config import ProviderConfig

__all__ = ["Provider", "ProviderCall", "create_provider"]


def create_provider(
    name: str,
    config: ProviderConfig,
    *,
    http: Callable[[], httpx2.AsyncClient],
    env: Mapping[str, str],
) -> Provider:
    """Build the provider *name* of kind ``config.type`` (imports its module on first use).

    *http* returns the client's shared HTTP pool; it is called only for providers that use
    the network, so a local-only client never imports or builds one.
    """
    if config.type == "openai":
        from genrouter.providers.openai import OpenAIProvider

        return OpenAIProvider(name, config, http=http(), env=env)
    if config.type == "openai_compatible":
        from genrouter.providers.openai_compat import OpenAICompatibleProvider

        return OpenAICompatibleProvider(name, config, http=http(), env=env)
    if config.type == "dashscope":
        from genrouter.providers.dashscope import DashScopeProvider

        return DashScopeProvider(name, config, http=http(), env=env)
    if config.type == "local":
        from genrouter.providers.local import LocalProvider

        return LocalProvider(name, config, env=env)
    raise ConfigError(
        f"provider {name!r} is declared custom: pass its instance as "
        f"AsyncClient(..., providers={{{name!r}: ...}})",
        location=f"providers.{name}",
    )
