"""The sync ``Client`` offers everything ``AsyncClient`` does (issue 15).

The comparison is generic: a public attribute, method or constructor argument added to
``AsyncClient`` fails this test until ``Client`` has it too.
"""

from __future__ import annotations

import inspect
from typing import Any

from genrouter import AsyncClient, Client
from genrouter.tokens import TokenCounter

# Async names whose sync twin is spelled differently (the dunder protocols are not public).
_SYNC_NAME = {"aclose": "close"}


def _public(cls: type) -> dict[str, Any]:
    return {
        name: inspect.getattr_static(cls, name) for name in dir(cls) if not name.startswith("_")
    }


def _instance_attributes(client: object) -> set[str]:
    return {name for name in vars(client) if not name.startswith("_")}


def _parameters(fn: Any) -> list[tuple[str, Any, Any]]:
    signature = inspect.signature(fn)
    return [(p.name, p.kind, p.default) for p in signature.parameters.values() if p.name != "self"]


def test_every_public_async_name_exists_on_the_sync_client() -> None:
    async_names = _public(AsyncClient)
    sync_names = _public(Client)
    missing = sorted(name for name in async_names if _SYNC_NAME.get(name, name) not in sync_names)
    assert missing == []


def test_methods_take_the_same_parameters() -> None:
    sync_names = _public(Client)
    compared = 0
    for name, value in _public(AsyncClient).items():
        twin = sync_names[_SYNC_NAME.get(name, name)]
        if isinstance(value, property):
            assert isinstance(twin, property), name
            continue
        if callable(value):
            assert _parameters(getattr(AsyncClient, name)) == _parameters(
                getattr(Client, _SYNC_NAME.get(name, name))
            ), name
            compared += 1
    assert compared >= 3  # route, models, model_spec, provider, aclose…


def test_constructors_take_the_same_arguments() -> None:
    assert _parameters(AsyncClient.__init__) == _parameters(Client.__init__)


def test_instance_attributes_match() -> None:
    counter = TokenCounter()
    async_client = AsyncClient({}, env={}, token_counter=counter)
    with Client({}, env={}, token_counter=counter) as client:
        assert _instance_attributes(async_client) <= _instance_attributes(client)
        assert client.config is client.async_client.config
        assert client.health is client.async_client.health
        spec = client.model_spec("openai/o3-mini")
        assert spec is not None and spec.id == "openai/o3-mini"
        assert client.provider("openai").name == "openai"
        # The documented advice: one TokenCounter shared by clients, sync ones included.
        assert client.async_client._tokens is counter


def test_sync_client_passes_clock_and_http_client_through() -> None:
    import httpx2

    times = iter(range(1000, 2000))
    pool = httpx2.AsyncClient()
    with Client({}, env={}, http_client=pool, clock=lambda: float(next(times))) as client:
        assert client.async_client._http is pool
        assert client.async_client._clock() == 1000.0
