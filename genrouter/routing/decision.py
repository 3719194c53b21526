"""The routing decision: filter candidates, estimate them, rank them. Pure, no I/O.

:func:`decide` takes the request's needs and plain facts about each candidate (gathered by the
client from its catalog, providers and health state) and returns a
:class:`~genrouter.types.RouteDecision`. The same object is the dry run (``client.route``),
the ``decision`` in every response's ``RouteInfo``, and what ``genrouter route --explain``
prints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from genrouter.catalog import ModelSpec
from genrouter.config import RouteConfig
from genrouter.lifecycle import deprecation_note, retired_reason
from genrouter.request import Needs
from genrouter.routing.health import LatencyStats
from genrouter.types import CandidateEvaluation, RouteDecision

__all__ = ["DEFAULT_EXPECTED_OUTPUT", "CandidateFacts", "decide", "expected_output_tokens"]

# Output tokens assumed for cost and latency when the caller set no limit and nothing was observed.
DEFAULT_EXPECTED_OUTPUT = 256


# Not frozen: one is built per candidate per request, and a frozen dataclass's __init__
# costs about twice a plain one's (object.__setattr__ per field). Nothing mutates it.
@dataclass(slots=True)
class CandidateFacts:
    """What the client knows about one candidate at decision time."""

    spec: ModelSpec
    prompt_tokens: int
    prompt_tokens_method: str
    fallback: bool = False
    # Why the model cannot be used here (genrouter.usability.unusable_reason): no key
    # ("no credentials: set OPENAI_API_KEY"), no model file, no local runtime.
    missing_credentials: str | None = None
    blocked: str | None = None  # e.g. circuit open
    offline: str | None = None  # remote, and its provider or the network is marked down
    observed: LatencyStats | None = None
    prompt_tokens_counted: int | None = None  # before calibration, when it was applied
    prompt_tokens_uncertainty: float = 0.0  # relative error of the count: the pre-check margin
    # Unset capabilities mean "unknown, try it" (models of openai_compatible providers).
    capabilities_unknown_ok: bool = False


def expected_output_tokens(output_limit: int | None, candidates: Sequence[CandidateFacts]) -> int:
    """Output tokens to plan for, the same for every candidate so that they compare fairly.

    The caller's limit if set; else the mean of what the candidates were observed to write;
    else a default (capped by the smallest maximum output among the candidates).
    """
    if output_limit is not None:
        return output_limit
    observed = [
        f.observed.output_tokens
        for f in candidates
        if f.observed is not None and f.observed.output_tokens is not None
    ]
    if observed:
        return max(1, round(sum(observed) / len(observed)))
    caps = [f.spec.max_output_tokens for f in candidates]
    return min(DEFAULT_EXPECTED_OUTPUT, *caps) if caps else DEFAULT_EXPECTED_OUTPUT


def _estimated_latency_ms(spec: ModelSpec, observed: LatencyStats | None, output: int) -> float:
    ttft = spec.prior_ttft_ms
    speed = spec.prior_tokens_per_s
    if observed is not None:
        ttft = observed.ttft_ms if observed.ttft_ms is not None else ttft
        speed = observed.tokens_per_s if observed.tokens_per_s else speed
    return ttft + output / speed * 1000.0


def _capability_gap(spec: ModelSpec, needs: Needs, unknown_ok: bool = False) -> str | None:
    if needs.modalities <= spec.input_modalities and not (
        needs.tools or needs.json_schema or needs.json_object
    ):
        return None  # the common case, without building anything
    missing_media = sorted(needs.modalities - spec.input_modalities)
    if missing_media:
        takes = ", ".join(sorted(spec.input_modalities))
        return f"needs {' and '.join(missing_media)} input; model takes {takes}"

    def lacks(capability: bool | None) -> bool:
        return capability is False or (capability is None and not unknown_ok)

    if needs.tools and lacks(spec.tools):
        return f'needs tool calling; model has none (set tools = true under [models."{spec.id}"])'
    if needs.json_schema and lacks(spec.json_schema):
        return (
            "needs JSON-schema output; model lacks it "
            f'(set json_schema = true under [models."{spec.id}"])'
        )
    # JSON mode: an explicit json_object = false filters; unset, JSON-schema support implies it.
    if needs.json_object and (
        spec.json_object is False or (lacks(spec.json_object) and spec.json_schema is not True)
    ):
        return (
            f'needs JSON output; model lacks it (set json_object = true under [models."{spec.id}"])'
        )
    return None


@dataclass(slots=True)
class _Estimate:
    """A candidate's numbers while ranking; becomes a CandidateEvaluation at the end."""

    facts: CandidateFacts
    cost: float | None
    latency_ms: float
    reason: str | None


def _exclusion(
    facts: CandidateFacts,
    needs: Needs,
    output_limit: int | None,
    route: RouteConfig,
    budget_left: float | None,
    cost: float | None,
    latency: float,
    today: date | None = None,
) -> str | None:
    """The first reason *facts* cannot serve the request, or ``None``."""
    spec = facts.spec
    if today is not None and (retired := retired_reason(spec, today)) is not None:
        return retired
    reason = _capability_gap(spec, needs, facts.capabilities_unknown_ok)
    if reason is not None:
        return reason
    wanted = output_limit or 1
    margin = math.ceil(facts.prompt_tokens * facts.prompt_tokens_uncertainty)
    if facts.prompt_tokens + margin + wanted > spec.context_window:
        if margin:
            return (
                f"prompt (~{facts.prompt_tokens} tokens estimated, up to "
                f"{facts.prompt_tokens + margin} at ±{facts.prompt_tokens_uncertainty:.0%}) "
                f"+ max output ({wanted}) may exceed the context window ({spec.context_window})"
            )
        return (
            f"prompt ({facts.prompt_tokens} tokens) + max output ({wanted}) "
            f"exceeds the context window ({spec.context_window})"
        )
    if output_limit is not None and output_limit > spec.max_output_tokens:
        return f"max output {output_limit} exceeds the model's {spec.max_output_tokens}"
    if facts.missing_credentials or facts.blocked:
        return facts.missing_credentials or facts.blocked
    max_cost = route.max_cost_usd
    if max_cost is not None and cost is not None and cost > max_cost:
        return f"estimated ${cost:.6f} exceeds the route's max ${max_cost:g}"
    max_latency = route.max_latency_ms
    if max_latency is not None and latency > max_latency:
        return f"estimated {latency:.0f} ms exceeds the route's max {max_latency:g} ms"
    if budget_left is not None and cost is None:
        # Unknown price is not free: under a budget the model could spend without a bound.
        return (
            f"no price known and the client has a budget: set input_price/output_price "
            f"under [models.{spec.id!r}]"
        )
    if budget_left is not None and cost and cost > budget_left:
        return f"over budget: estimated ${cost or 0.0:.6f}, ${max(budget_left, 0.0):.6f} left"
    return None


def _evaluate(
    facts: CandidateFacts,
    needs: Needs,
    output_limit: int | None,
    output: int,
    route: RouteConfig,
    budget_left: float | None,
    today: date | None = None,
) -> _Estimate:
    spec = facts.spec
    cost = spec.estimate_cost(facts.prompt_tokens, output)
    latency = _estimated_latency_ms(spec, facts.observed, output)
    reason = _exclusion(facts, needs, output_limit, route, budget_left, cost, latency, today)
    return _Estimate(facts, cost, latency, reason)


def _scores(objective: str, route: RouteConfig, estimates: Sequence[_Estimate]) -> list[float]:
    costs = [e.cost if e.cost is not None else math.inf for e in estimates]
    latencies = [e.latency_ms for e in estimates]
    if objective == "cost":
        return costs
    if objective == "latency":
        return latencies
    if objective == "balanced":
        top_cost = max((c for c in costs if math.isfinite(c)), default=0.0) or 1.0
        top_latency = max(latencies, default=0.0) or 1.0
        w_cost = route.weights.get("cost", 0.5)
        w_latency = route.weights.get("latency", 0.5)
        return [
            w_cost * min(c / top_cost, 10.0) + w_latency * min(t / top_latency, 10.0)
            for c, t in zip(costs, latencies, strict=True)
        ]
    return [float(i) for i in range(len(estimates))]  # ordered: the configured order


def _evaluation(estimate: _Estimate, score: float | None) -> CandidateEvaluation:
    facts = estimate.facts
    return CandidateEvaluation(
        model=facts.spec.id,
        provider=facts.spec.provider,
        prompt_tokens=facts.prompt_tokens,
        estimated_cost_usd=estimate.cost,
        estimated_latency_ms=estimate.latency_ms,
        score=None if estimate.reason is not None else score,
        excluded_because=estimate.reason,
        fallback=facts.fallback,
        prompt_tokens_counted=facts.prompt_tokens_counted,
        prompt_tokens_uncertainty=facts.prompt_tokens_uncertainty,
    )


def _skip_offline(in_order: list[tuple[_Estimate, float | None]]) -> None:
    """Exclude offline-marked candidates that have an eligible unmarked one after them.

    Marks exist to reach a working candidate (a local model, a provider that still answers)
    without waiting on one that just failed to connect. A marked candidate with nothing
    unmarked behind it keeps its place: skipping it would turn a possible answer (the probe
    that finds the network back) into a certain failure.
    """
    unmarked_later = False
    for estimate, _score in reversed(in_order):
        if estimate.reason is not None:
            continue
        if estimate.facts.offline is None:
            unmarked_later = True
        elif unmarked_later:
            estimate.reason = estimate.facts.offline


def decide(
    *,
    route_name: str,
    route: RouteConfig,
    needs: Needs,
    output_limit: int | None,
    candidates: Sequence[CandidateFacts],
    rule: str | None = None,
    budget_left_usd: float | None = None,
    today: date | None = None,
    notes: Sequence[str] = (),
) -> RouteDecision:
    """Filter and rank *candidates* for one request.

    Primary candidates are ranked by the route's objective (ties keep configured order);
    fallbacks follow in configured order. Excluded candidates stay in the decision with the
    reason, so the explanation is complete. With *today*, models past their shutdown date are
    excluded (the reason names the successor) and deprecated ones in the plan get a note.
    """
    output = expected_output_tokens(output_limit, candidates)
    estimates = [
        _evaluate(f, needs, output_limit, output, route, budget_left_usd, today) for f in candidates
    ]
    primary = [e for e in estimates if not e.facts.fallback]
    scores = _scores(route.objective, route, primary)
    ranked: Sequence[int] = range(len(primary))  # one candidate (or none): nothing to sort
    if len(primary) > 1:
        ranked = sorted(ranked, key=lambda i: (scores[i], i))
    in_order = [
        *((primary[i], None if math.isinf(scores[i]) else scores[i]) for i in ranked),
        *((e, None) for e in estimates if e.facts.fallback),
    ]
    if any(f.offline is not None for f in candidates):  # else _skip_offline changes nothing
        _skip_offline(in_order)
    ordered = [_evaluation(estimate, score) for estimate, score in in_order]
    first = candidates[0] if candidates else None
    all_notes = list(notes)
    if today is not None:
        planned = {e.model for e in ordered if e.excluded_because is None}
        for facts in candidates:
            note = deprecation_note(facts.spec, today) if facts.spec.id in planned else None
            if note is not None and note not in all_notes:
                all_notes.append(note)
    return RouteDecision(
        route=route_name,
        objective=route.objective,
        rule=rule,
        prompt_tokens=first.prompt_tokens if first else 0,
        prompt_tokens_method=first.prompt_tokens_method if first else "none",
        expected_output_tokens=output,
        candidates=tuple(ordered),
        plan=tuple(e.model for e in ordered if e.excluded_because is None),
        notes=tuple(all_notes),
    )
