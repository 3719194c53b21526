"""Starting the gateway on uvicorn: one process or ``--workers N``, graceful shutdown.

uvicorn with its fastest parts when installed (``uvloop``, ``httptools``: the ``server``
extra brings both), access log off (a log line per request costs more than the gateway's own
work). With ``workers > 1`` uvicorn's supervisor starts N processes that share the listening
socket; each builds its own app and client from the config file (named by
``GENROUTER_GATEWAY_CONFIG``), and they share metrics through a temporary directory and
routing state through the ``state`` backend.

SIGTERM (or Ctrl-C): stop accepting connections, let open requests and streams finish for up
to ``drain_s`` seconds (``[gateway]``), then close what is left and exit.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from genrouter.errors import ConfigError
from genrouter.server.settings import check_bind, config_path_for_workers, load_gateway

__all__ = ["app_from_env", "http_protocol", "serve"]

CONFIG_ENV = "GENROUTER_GATEWAY_CONFIG"
METRICS_ENV = "GENROUTER_GATEWAY_METRICS_DIR"


def _fastest(module: str, fast: str, fallback: str) -> str:
    return fast if importlib.util.find_spec(module) is not None else fallback


def http_protocol() -> str:
    """uvicorn's ``http`` setting: httptools' protocol, writing each response's head with its
    body (server/_protocol.py), when httptools is installed; else h11's."""
    return _fastest("httptools", "genrouter.server._protocol:HeadWithBodyProtocol", "h11")


def app_from_env() -> object:
    """The app factory each worker process calls (``uvicorn … --factory``)."""
    from genrouter.server.app import Gateway

    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise ConfigError(f"${CONFIG_ENV} names no config file")
    return Gateway(load_gateway(path), metrics_dir=os.environ.get(METRICS_ENV) or None)


def serve(config: str | os.PathLike[str], *, host: str, port: int, workers: int = 1) -> None:
    """Run the gateway until SIGTERM/SIGINT (blocks). Checks the config before listening."""
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("the gateway needs uvicorn: pip install 'genrouter[server]'") from None
    if workers < 1:
        raise ConfigError("must be at least 1", location="--workers")
    loaded = load_gateway(config)  # a bad config fails here, before any worker starts
    check_bind(loaded.settings, host)
    common = {
        "host": host,
        "port": port,
        "loop": _fastest("uvloop", "uvloop", "asyncio"),
        "http": http_protocol(),
        "lifespan": "on",
        "access_log": False,
        "log_level": "warning",
        "timeout_graceful_shutdown": loaded.settings.drain_s,
        "server_header": False,
        "proxy_headers": False,  # the gateway reads no client address: skip the middleware
        # Idle keep-alive connections stay open longer than clients' and load balancers' own
        # idle timeouts (httpx: 5 s, typical balancers: 60 s), so a client never reuses a
        # connection the server is closing at that moment (uvicorn's default is 5 s).
        "timeout_keep_alive": 75,
    }
    if workers == 1:
        from genrouter.server.app import Gateway

        uvicorn.run(Gateway(loaded), **common)  # type: ignore[arg-type]
        return
    metrics_dir = Path(tempfile.mkdtemp(prefix="genrouter-gateway-metrics-"))
    os.environ[CONFIG_ENV] = config_path_for_workers(config)
    os.environ[METRICS_ENV] = str(metrics_dir)
    try:
        uvicorn.run(
            "genrouter.server.run:app_from_env",
            factory=True,
            workers=workers,
            **common,  # type: ignore[arg-type]
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
