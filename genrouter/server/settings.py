"""The gateway's own settings: the ``[gateway]`` table of the config file, checked at startup.

The rest of the file is an ordinary genrouter configuration (providers, routes, ``state``);
``[gateway]`` is taken out before the client reads it. A bad table fails at startup with a
:class:`~genrouter.errors.ConfigError` naming the field (``gateway.keys[0].hash``), and so
does an unsafe combination: listening beyond loopback with no gateway keys.

::

    [gateway]
    max_body_bytes = 4194304     # larger request bodies get 413
    cors_origins = []            # CORS is off unless origins are listed ("*" allows any)
    drain_s = 30                 # on SIGTERM, open streams get this long to finish

    [[gateway.keys]]
    hash = "sha256:…"            # `genrouter serve --hash-key` prints it; the key is never stored
    tenant = "team-a"
    rate_limit = 600             # requests per rate_window_s (sliding window), per key
    rate_window_s = 60
    budget_usd = 5.0             # spend per budget_window_s, per key
    budget_window_s = 86400
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from genrouter.config import Config, _as_path, _read_file, load_config
from genrouter.errors import ConfigError
from genrouter.messages import first_validation_error

__all__ = [
    "GatewayKey",
    "GatewaySettings",
    "LoadedGateway",
    "check_bind",
    "hash_key",
    "is_loopback",
    "load_gateway",
    "new_key",
]

_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
_TENANT = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
#: Key prefix of keys made by :func:`new_key` (any string of 16+ characters works as a key).
KEY_PREFIX = "grk-"
#: The upstream connection pool when the config file has no ``[pool]`` table.
# Measured (docs/benchmarks.md, "Gateway"): with 1,024 connections a 512-client burst opened
# up to 512 upstream connects at once on a saturated loop; their 5 s connect timeouts counted
# against the (healthy) upstream and opened its circuit. 100, all kept alive: no errors, and
# a wait for a pool slot does not count against a model's health.
GATEWAY_POOL = {"max_connections": 100, "max_keepalive_connections": 100}


def hash_key(key: str) -> str:
    """The stored form of a gateway key: ``sha256:`` and the hex SHA-256 of its UTF-8 bytes.

    Keys are long random strings (:func:`new_key`), so a plain SHA-256 is enough: there is no
    dictionary to guess from, and checking one costs ~1 µs per request.
    """
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A new random gateway key (``grk-`` and 43 URL-safe characters, 256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewayKey(_Strict):
    """One gateway API key: its hash, the tenant it names, and its limits."""

    hash: str = Field(repr=False)
    tenant: str
    rate_limit: int | None = Field(default=None, gt=0)
    rate_window_s: float = Field(default=60.0, gt=0, le=86400)
    budget_usd: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    budget_window_s: float = Field(default=86400.0, gt=0, le=90 * 86400)

    @field_validator("hash")
    @classmethod
    def _check_hash(cls, value: str) -> str:
        if not _HASH.fullmatch(value):
            raise ValueError(
                "must be 'sha256:' and 64 lowercase hex digits (genrouter serve --hash-key); "
                "a key itself is never stored in the config"
            )
        return value

    @field_validator("tenant")
    @classmethod
    def _check_tenant(cls, value: str) -> str:
        if not _TENANT.fullmatch(value):
            raise ValueError("must be 1-64 characters of letters, digits and _ . : -")
        return value

    @property
    def key_id(self) -> str:
        """A short stable name for the key in limits and logs (never the key, nor its hash)."""
        return self.hash[7:23]


class GatewaySettings(_Strict):
    """The ``[gateway]`` table."""

    keys: tuple[GatewayKey, ...] = ()
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=512 * 1024 * 1024)
    cors_origins: tuple[str, ...] = ()
    drain_s: float = Field(default=30.0, ge=0, le=3600)

    @field_validator("keys")
    @classmethod
    def _unique(cls, keys: tuple[GatewayKey, ...]) -> tuple[GatewayKey, ...]:
        seen: set[str] = set()
        for key in keys:
            if key.hash in seen:
                raise ValueError(f"the same key hash is listed twice (tenant {key.tenant!r})")
            seen.add(key.hash)
        return keys


@dataclass(frozen=True, slots=True)
class LoadedGateway:
    """A config file split in two: the client's :class:`Config` and the gateway's settings."""

    config: Config
    settings: GatewaySettings


def load_gateway(
    source: str | os.PathLike[str] | Mapping[str, Any], *, env: Mapping[str, str] | None = None
) -> LoadedGateway:
    """Read *source* (a config file or a mapping); ``[gateway]`` goes to the settings."""
    data = dict(source) if isinstance(source, Mapping) else _read_file(_as_path(source))
    # A gateway multiplexes many callers on one pool: the client's defaults (100 connections,
    # 20 kept alive) would queue and reconnect at a few hundred concurrent streams.
    data.setdefault("pool", dict(GATEWAY_POOL))
    table = data.pop("gateway", {})
    if not isinstance(table, Mapping):
        raise ConfigError("must be a table", location="gateway")
    try:
        settings = GatewaySettings.model_validate(table)
    except ValidationError as exc:
        loc, msg = first_validation_error(exc, "gateway")
        raise ConfigError(msg, location=loc) from None
    return LoadedGateway(load_config(data, env=env), settings)


def is_loopback(host: str) -> bool:
    """Whether binding *host* keeps the gateway reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: GatewaySettings, host: str) -> None:
    """Refuse to listen beyond loopback without gateway keys: anyone could spend the keys."""
    if not settings.keys and not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host!r} with no gateway keys: anyone who can reach it "
            "could spend your provider keys. Add [[gateway.keys]] (genrouter serve --hash-key) "
            "or bind 127.0.0.1",
            location="gateway.keys",
        )


def config_path_for_workers(path: str | os.PathLike[str]) -> str:
    """An absolute path, so that worker processes started elsewhere read the same file."""
    return str(Path(path).expanduser().resolve())
