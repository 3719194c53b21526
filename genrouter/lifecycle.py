"""Model lifecycle: live, deprecated or retired on a given date. Pure functions, no I/O.

A model with a ``shutdown_on`` date on or before *today* is **retired**: it no longer answers,
so routing excludes it and a request naming it raises
:class:`~genrouter.errors.ModelRetiredError` (or follows its ``successor`` when the
configuration says ``follow_successors = true``). A model whose deprecation was announced
(``deprecated_on`` reached; or a future ``shutdown_on`` with no ``deprecated_on``) is
**deprecated**: it still
works, with a warning once per client and a note in the route info.

"Today" is the client's ``today()`` (UTC by default), so tests and what-if runs can move it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from genrouter.catalog import ModelSpec
from genrouter.errors import ModelRetiredError

__all__ = [
    "Lifecycle",
    "Status",
    "deprecation_note",
    "lifecycle",
    "resolve_retired",
    "retired_reason",
    "utc_today",
]

_MAX_SUCCESSOR_HOPS = 5  # a chain of successors longer than this is a catalog mistake

Status = Literal["live", "deprecated", "retired"]


def utc_today() -> date:
    """Today's date in UTC: the default date source of a client."""
    return datetime.now(UTC).date()


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Where a model stands on one date."""

    status: Status
    shutdown_on: date | None
    successor: str | None

    def describe(self) -> str:
        """``live``, ``deprecated until 2027-01-14 -> openai/gpt-6-luna``, ``retired on …``."""
        then = f" -> {self.successor}" if self.successor else ""
        if self.status == "retired":
            return f"retired on {self.shutdown_on}{then}"
        if self.status == "deprecated":
            until = f" until {self.shutdown_on}" if self.shutdown_on else ""
            return f"deprecated{until}{then}"
        return "live"


def lifecycle(spec: ModelSpec, today: date) -> Lifecycle:
    """The status of *spec* on *today*."""
    if spec.shutdown_on is not None and today >= spec.shutdown_on:
        status: Status = "retired"
    elif (spec.deprecated_on is not None and today >= spec.deprecated_on) or (
        spec.deprecated_on is None and spec.shutdown_on is not None
    ):
        status = "deprecated"  # announced; without an announcement date, from the start
    else:
        status = "live"
    return Lifecycle(status, spec.shutdown_on, spec.successor)


def retired_reason(spec: ModelSpec, today: date) -> str | None:
    """Why *spec* cannot be routed to on *today* (``retired on … ; use …``), or ``None``."""
    if spec.shutdown_on is None or today < spec.shutdown_on:
        return None
    instead = f"; use {spec.successor}" if spec.successor else ""
    return f"retired on {spec.shutdown_on}{instead}"


def deprecation_note(spec: ModelSpec, today: date) -> str | None:
    """A one-line note for a deprecated (not yet retired) model, or ``None``."""
    if spec.shutdown_on is None and spec.deprecated_on is None:
        return None  # live on every date (the common case: asked per request)
    state = lifecycle(spec, today)
    if state.status != "deprecated":
        return None
    until = f", shuts down on {spec.shutdown_on}" if spec.shutdown_on else ""
    instead = f"; move to {spec.successor}" if spec.successor else ""
    return f"{spec.id} is deprecated{until}{instead}"


def resolve_retired(
    spec: ModelSpec,
    today: date,
    *,
    follow: bool,
    lookup: Callable[[str], ModelSpec | None],
) -> tuple[ModelSpec, list[str]]:
    """The model to use when a request names *spec*, and notes saying why.

    *spec* itself while it answers on *today*. Once retired: its successor (then that one's,
    if retired too) when *follow* is set and *lookup* knows it, with a note per step;
    otherwise :class:`~genrouter.errors.ModelRetiredError` naming what to use instead.
    """
    notes: list[str] = []
    for _ in range(_MAX_SUCCESSOR_HOPS):
        if retired_reason(spec, today) is None:
            break
        successor = lookup(spec.successor) if spec.successor else None
        if not follow or successor is None:
            hint = (
                f"; use {spec.successor} instead (or set follow_successors = true)"
                if spec.successor
                else "; it has no known successor"
            )
            raise ModelRetiredError(
                f"{spec.id} was retired on {spec.shutdown_on}{hint}",
                model=spec.id,
                shutdown_on=spec.shutdown_on,
                successor=spec.successor,
            )
        notes.append(
            f"{spec.id} was retired on {spec.shutdown_on}; "
            f"following its successor {successor.id} (follow_successors = true)"
        )
        spec = successor
    return spec, notes
