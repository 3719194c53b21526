"""Who is calling, and whether they may: gateway keys, rate limits and budgets.

A key arrives as ``Authorization: Bearer KEY`` (what every openai SDK sends); it is hashed
and looked up among the configured hashes, so the server never holds a key in clear. With no
keys configured (allowed on loopback only, see :func:`~genrouter.server.settings.check_bind`)
every caller is the tenant ``local`` with no limits.
"""

from __future__ import annotations

from genrouter.server.settings import GatewayKey, GatewaySettings, hash_key
from genrouter.server.wire import ApiError
from genrouter.state.limits import KeyLimits

__all__ = ["Gatekeeper"]

_BEARER = b"bearer "


class Gatekeeper:
    """Checks a request's key, rate limit and budget; records what it spent."""

    def __init__(self, settings: GatewaySettings, limits: KeyLimits) -> None:
        self._keys = {key.hash: key for key in settings.keys}
        self._open = not self._keys
        self.limits = limits

    def admit(self, authorization: bytes | None) -> GatewayKey | None:
        """The caller's key (``None`` when the gateway runs without keys), or an
        :class:`ApiError` 401/429 raised."""
        if self._open:
            return None
        if authorization is None or not authorization[:7].lower() == _BEARER:
            raise ApiError(
                401,
                "missing gateway API key: send 'Authorization: Bearer KEY' "
                "(the openai SDK's api_key)",
                "invalid_request_error",
                "missing_api_key",
            )
        presented = authorization[7:].strip().decode("utf-8", "replace")
        key = self._keys.get(hash_key(presented))
        if key is None:
            raise ApiError(
                401, "incorrect gateway API key", "invalid_request_error", "invalid_api_key"
            )
        if key.rate_limit is not None:
            verdict = self.limits.hit(key.key_id, limit=key.rate_limit, window_s=key.rate_window_s)
            if not verdict.allowed:
                raise ApiError(
                    429,
                    f"rate limit of {key.rate_limit} requests per {key.rate_window_s:g}s "
                    f"reached for tenant {key.tenant!r}",
                    "rate_limit_error",
                    "rate_limit_exceeded",
                    None,
                    verdict.retry_after_s,
                )
        if key.budget_usd is not None:
            spent = self.limits.spent(key.key_id, window_s=key.budget_window_s)
            if spent >= key.budget_usd:
                raise ApiError(
                    429,
                    f"budget of ${key.budget_usd:g} per {key.budget_window_s:g}s spent for "
                    f"tenant {key.tenant!r} (${spent:.6f})",
                    "insufficient_quota",
                    "budget_exceeded",
                )
        return key

    def record(self, key: GatewayKey | None, cost_usd: float | None) -> None:
        """Add what one answer cost to its key's budget."""
        if key is not None and key.budget_usd is not None and cost_usd:
            self.limits.spend(key.key_id, cost_usd, window_s=key.budget_window_s)
