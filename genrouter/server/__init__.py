"""genrouter's gateway: an OpenAI-compatible HTTP server that runs the router.

``genrouter serve --config FILE`` (install ``genrouter[server]``) serves
``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /healthz`` and ``GET /metrics`` on
uvicorn. The pieces, one job each:

- :mod:`genrouter.server.settings`: the ``[gateway]`` table (keys, limits, CORS) and the
  startup safety checks;
- :mod:`genrouter.server.auth`: hashed gateway keys, per-key rate limits and budgets;
- :mod:`genrouter.server.wire`: OpenAI's JSON, SSE framing and error shapes;
- :mod:`genrouter.server.app`: the ASGI application (raw ASGI: no framework on the hot path);
- :mod:`genrouter.server.metrics`: Prometheus text exposition;
- :mod:`genrouter.server.run`: starting uvicorn (workers, graceful shutdown).

Nothing here is imported by ``import genrouter``; uvicorn is imported only by ``run``.
See docs/gateway.md.
"""

from __future__ import annotations

__all__: list[str] = []
