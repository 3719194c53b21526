"""Which transport the client's HTTP pool uses (``[pool] transport``), imported with the pool.

``"genrouter"`` (the default) is :class:`genrouter._transport.AsyncioHTTP1Transport`, with the
environment's proxies mounted on httpx2's own transport as httpx2 itself would mount them;
without ``httptools`` (a C extension: a platform without a wheel) it falls back to httpx2's
default transport. ``"httpx"`` is httpx2's default transport (httpcore2), unchanged.
"""

from __future__ import annotations

from typing import Any

import httpx2

__all__ = ["transport_options"]


def transport_options(kind: str, limits: httpx2.Limits) -> dict[str, Any]:
    """Keyword arguments for :class:`httpx2.AsyncClient` (``transport=``, ``mounts=``), or none."""
    if kind != "genrouter":
        return {}
    try:
        import httptools  # noqa: F401  (only whether it imports)
    except ImportError:
        return {}
    from genrouter._transport import AsyncioHTTP1Transport, build_mounts

    return {
        "transport": AsyncioHTTP1Transport(limits=limits, trust_env=True),
        "mounts": build_mounts(limits, trust_env=True),
    }
