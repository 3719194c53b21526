"""What the ``genrouter`` command prints about results and failures: JSON shapes and error text.

The JSON shapes are documented in docs/cli.md; keep the two in step.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, TextIO

from genrouter.errors import (
    AllCandidatesFailedError,
    GenRouterError,
    NoCandidateError,
    ProviderError,
)
from genrouter.types import RouteDecision, RouteInfo

if TYPE_CHECKING:
    from genrouter.client import ModelStatus
    from genrouter.types import ChatCompletion

__all__ = [
    "DEMO_HINT",
    "completion_json",
    "decision_json",
    "error_json",
    "models_json",
    "needs_a_key_only",
    "render_failure",
    "write_json",
]

DEMO_HINT: Final = (
    "tip: a local model needs no key: pip install 'genrouter[demo]' answers offline "
    "(a 250 MB demo model)"
)


def _jsonable(value: Any) -> Any:
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value, fallback=str)


def decision_json(decision: RouteDecision) -> dict[str, Any]:
    """A :class:`RouteDecision` with each candidate's ``eligible`` spelled out."""
    data: dict[str, Any] = _jsonable(decision)
    for candidate, row in zip(decision.candidates, data["candidates"], strict=True):
        row["eligible"] = candidate.eligible
    return data


def route_info_json(info: RouteInfo) -> dict[str, Any]:
    data: dict[str, Any] = info.model_dump(mode="json", exclude={"decision"})
    data["fallbacks"] = info.fallbacks
    data["decision"] = None if info.decision is None else decision_json(info.decision)
    return data


def completion_json(response: ChatCompletion) -> dict[str, Any]:
    """OpenAI's chat completion object, plus ``route``: who answered and how."""
    data: dict[str, Any] = response.model_dump(mode="json")
    data["route"] = None if response.route is None else route_info_json(response.route)
    return data


def models_json(statuses: Sequence[ModelStatus]) -> dict[str, Any]:
    """``{"models": [...]}``: each :class:`ModelStatus` with all its fields."""
    return {"models": [_jsonable(status) for status in statuses]}


def error_json(exc: GenRouterError, exit_code: int) -> dict[str, Any]:
    """``{"error": {...}}``: the error's type, message, exit status and what routing knew."""
    message = exc.message if isinstance(exc, AllCandidatesFailedError) else str(exc)
    error: dict[str, Any] = {"type": type(exc).__name__, "message": message, "exit_code": exit_code}
    if isinstance(exc, ProviderError):
        for field in ("provider", "model", "status_code", "code", "request_id"):
            error[field] = getattr(exc, field)
    route = getattr(exc, "route", None)
    if isinstance(route, RouteInfo):
        error["route"] = route_info_json(route)
    decision = getattr(exc, "decision", None)
    if isinstance(decision, RouteDecision):
        error["decision"] = decision_json(decision)
    return {"error": error}


def write_json(out: TextIO, data: Any) -> None:
    out.write(json.dumps(data, ensure_ascii=False) + "\n")
    out.flush()


# -- errors for people ----------------------------------------------------------------------


def needs_a_key_only(decision: RouteDecision | None) -> bool:
    """Whether nothing could run only because keys are missing (no local model either)."""
    if decision is None or decision.plan:
        return False
    reasons = [c.excluded_because or "" for c in decision.candidates]
    return all(reason.startswith("no credentials") for reason in reasons)


def _attempt_lines(route: RouteInfo) -> list[str]:
    lines = []
    tries: dict[str, int] = {}
    for attempt in route.attempts:
        tries[attempt.model] = number = tries.get(attempt.model, 0) + 1
        if attempt.outcome == "ok":
            continue
        detail = attempt.error or attempt.outcome
        detail = detail.removeprefix(f"{attempt.model}: ")
        kind = f"{attempt.error_type}: " if attempt.error_type else ""
        lines.append(f"  {attempt.model} (try {number}): {kind}{detail}")
    lines.extend(f"  note: {note}" for note in route.notes)
    if route.decision is not None:
        lines.extend(
            f"  {c.model}: not tried: {c.excluded_because}"
            for c in route.decision.candidates
            if not c.eligible
        )
    return lines


def render_failure(exc: GenRouterError) -> str:
    """The error as a person should read it: one line, then each attempt and why it failed."""
    if isinstance(exc, AllCandidatesFailedError):
        lines = [f"genrouter: {type(exc).__name__}: {exc.message}"]
        if exc.route is not None and exc.route.attempts:
            lines.extend(_attempt_lines(exc.route))
        else:
            lines.extend(f"  {type(e).__name__}: {e}" for e in exc.exceptions)
    else:
        lines = [f"genrouter: {type(exc).__name__}: {exc}"]
    decision = getattr(exc, "decision", None)
    if isinstance(exc, NoCandidateError) and (
        needs_a_key_only(decision if isinstance(decision, RouteDecision) else None)
        and "genrouter[demo]" not in str(exc)
    ):
        lines.append(f"genrouter: {DEMO_HINT}")
    return "\n".join(lines)
