"""Per-client callbacks (OpenTelemetry lives in :mod:`genrouter.telemetry`).

Hooks are plain or async callables set on one client (there is no global registry). A hook
that raises is logged and ignored: observing a request must never break it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from genrouter.telemetry import Telemetry
from genrouter.types import Attempt, RouteInfo

__all__ = ["AsyncHooks", "Telemetry", "call_hook"]

_log = logging.getLogger("genrouter")

Hook = Callable[..., Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class AsyncHooks:
    """Callbacks for one client; each may be a function or a coroutine function.

    - ``on_attempt_start(model: str, attempt: int)`` before each try of a candidate
    - ``on_attempt_end(attempt: Attempt)`` after each try, whatever its outcome
    - ``on_fallback(failed_model: str, next_model: str, error: BaseException)`` on moving on
    - ``on_complete(route: RouteInfo)`` when a request succeeds (streams: at their end)
    """

    on_attempt_start: Callable[[str, int], Awaitable[None] | None] | None = None
    on_attempt_end: Callable[[Attempt], Awaitable[None] | None] | None = None
    on_fallback: Callable[[str, str, BaseException], Awaitable[None] | None] | None = None
    on_complete: Callable[[RouteInfo], Awaitable[None] | None] | None = None


async def call_hook(hook: Hook | None, *args: Any) -> None:
    """Run *hook* if set; log and swallow anything it raises."""
    if hook is None:
        return
    try:
        result = hook(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        _log.exception("genrouter hook %r raised; ignored", getattr(hook, "__name__", hook))
