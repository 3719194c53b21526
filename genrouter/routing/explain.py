"""Plain-text rendering of routing decisions and route info (for humans and the CLI)."""

from __future__ import annotations

from collections.abc import Sequence

from genrouter.types import RouteDecision, RouteInfo

__all__ = ["render_choice", "render_decision", "render_route_info", "render_table"]


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A left-aligned text table with a rule under the header."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
    return "\n".join(lines)


def _money(value: float | None) -> str:
    if value is None:
        return "?"
    return "$0" if value == 0 else f"${value:.6f}"


def render_decision(decision: RouteDecision) -> str:
    """The decision as a header line plus one table row per candidate."""
    via = f" (rule {decision.rule})" if decision.rule else ""
    head = (
        f"route {decision.route!r}{via}, objective {decision.objective}, "
        f"expecting ~{decision.expected_output_tokens} output tokens"
    )
    rows = []
    rank = 0
    for cand in decision.candidates:
        if cand.eligible:
            rank += 1
        rows.append(
            [
                str(rank) if cand.eligible else "-",
                cand.model + (" (fallback)" if cand.fallback else ""),
                "?" if cand.prompt_tokens is None else str(cand.prompt_tokens),
                _money(cand.estimated_cost_usd),
                "?" if cand.estimated_latency_ms is None else f"{cand.estimated_latency_ms:.0f} ms",
                "" if cand.score is None else f"{cand.score:.6g}",
                "ok" if cand.eligible else f"excluded: {cand.excluded_because}",
            ]
        )
    table = render_table(
        ["#", "model", "prompt tok", "est. cost", "est. latency", "score", "status"], rows
    )
    plan = " -> ".join(decision.plan) if decision.plan else "(no eligible candidate)"
    notes = "".join(f"\nnote: {note}" for note in decision.notes)
    return f"{head}\n{table}\nplan: {plan}{notes}"


# Why the first planned model came first, by route objective (decision.py's ranking).
_OBJECTIVE_REASONS = {
    "ordered": "first eligible in the route's order",
    "cost": "lowest estimated cost",
    "latency": "lowest estimated latency",
    "balanced": "best balance of estimated cost and latency",
}


def render_choice(decision: RouteDecision, answered: str | None = None) -> str:
    """One line on why the plan starts where it does, and who answered if that differs.

    *answered* is the model that produced the answer (``RouteInfo.model``); after a fallback
    the line names it, not the first choice that failed.
    """
    if not decision.plan:
        return "no candidate was eligible"
    first = decision.plan[0]
    why = _OBJECTIVE_REASONS.get(decision.objective, f"objective {decision.objective}")
    if answered is None or answered == first:
        line = f"chose {first} ({why})"
    else:
        line = f"{answered} answered as a fallback; first choice was {first} ({why})"
    skipped = [c for c in decision.candidates if not c.eligible]
    if skipped:
        reasons = "; ".join(f"{c.model}: {c.excluded_because}" for c in skipped[:4])
        more = f"; and {len(skipped) - 4} more" if len(skipped) > 4 else ""
        line += f" — skipped {reasons}{more}"
    return line


def render_route_info(info: RouteInfo) -> str:
    """Which model answered and how: attempts, timings, cost."""
    lines = [f"answered by {info.model or '?'} via route {info.route!r}"]
    timing = []
    if info.ttft_ms is not None:
        timing.append(f"first token {info.ttft_ms:.0f} ms")
    if info.latency_ms is not None:
        timing.append(f"total {info.latency_ms:.0f} ms")
    if info.cost_usd is not None:
        timing.append(f"cost {_money(info.cost_usd)}")
    if timing:
        lines.append(", ".join(timing))
    if info.prompt_tokens_reported is not None:
        lines.append(
            f"prompt tokens: estimated {info.prompt_tokens_estimated}, "
            f"reported {info.prompt_tokens_reported}"
        )
    for attempt in info.attempts:
        detail = f": {attempt.error_type}" if attempt.error_type else ""
        lines.append(f"  attempt {attempt.model} -> {attempt.outcome}{detail}")
    if info.dropped_params:
        lines.append(f"dropped parameters: {', '.join(info.dropped_params)}")
    lines.extend(f"note: {note}" for note in info.notes)
    return "\n".join(lines)
