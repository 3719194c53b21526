"""The metric instruments genrouter records through the OpenTelemetry metrics API.

The GenAI client metrics of the semantic conventions, with their bucket advice:
``gen_ai.client.operation.duration`` (s), ``gen_ai.client.operation.time_to_first_chunk`` (s,
streams only) and ``gen_ai.client.token.usage`` (``{token}``, by ``gen_ai.token.type``); and
genrouter's own counters: ``genrouter.attempts`` (by ``genrouter.outcome``),
``genrouter.fallbacks`` (``genrouter.kind``: fallback or resume),
``genrouter.circuit.transitions`` (by ``genrouter.circuit.state`` entered),
``genrouter.cooldowns`` and ``genrouter.cost`` (USD, ``genrouter.cost.kind``: estimated or
actual, for answered requests).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from genrouter._telemetry_names import DURATION_BUCKETS, TOKEN_BUCKETS, Names

if TYPE_CHECKING:
    from genrouter.types import RouteInfo, Usage

__all__ = ["Instruments", "measure_request"]


class Instruments:
    """The instruments of one meter, made once."""

    __slots__ = (
        "attempts",
        "circuit",
        "cooldowns",
        "cost",
        "duration",
        "fallbacks",
        "tokens",
        "ttfc",
    )

    def __init__(self, meter: Any, names: Names) -> None:
        def histogram(name: str, unit: str, description: str, buckets: tuple[float, ...]) -> Any:
            try:
                return meter.create_histogram(
                    name,
                    unit=unit,
                    description=description,
                    explicit_bucket_boundaries_advisory=list(buckets),
                )
            except TypeError:  # an API older than the bucket advice (< 1.23)
                return meter.create_histogram(name, unit=unit, description=description)

        self.duration = histogram(
            names.metric_duration, "s", "GenAI operation duration.", DURATION_BUCKETS
        )
        self.ttfc = histogram(
            names.metric_time_to_first_chunk,
            "s",
            "Time to receive the first chunk of a streamed answer.",
            DURATION_BUCKETS,
        )
        self.tokens = histogram(
            names.metric_token_usage, "{token}", "Number of input and output tokens used.",
            TOKEN_BUCKETS,
        )  # fmt: skip
        self.attempts = meter.create_counter(
            "genrouter.attempts", unit="{attempt}", description="Attempts by outcome."
        )
        self.fallbacks = meter.create_counter(
            "genrouter.fallbacks",
            unit="{fallback}",
            description="Moves to the next candidate after a failure (resumes included).",
        )
        self.circuit = meter.create_counter(
            "genrouter.circuit.transitions",
            unit="{transition}",
            description="Circuit-breaker state changes, by the state entered.",
        )
        self.cooldowns = meter.create_counter(
            "genrouter.cooldowns",
            unit="{cooldown}",
            description="Models cooled down for a server's Retry-After.",
        )
        self.cost = meter.create_counter(
            "genrouter.cost",
            unit="{USD}",
            description="Cost of answered requests: estimated before, actual after.",
        )


def measure_request(
    instruments: Instruments,
    names: Names,
    attributes: dict[str, Any],
    info: RouteInfo | None,
    usage: Usage | None,
    *,
    stream: bool,
    start_ns: int,
) -> None:
    """Record one finished request: its duration, time to first chunk, tokens and cost.

    *attributes* are the request span's shared ones (operation, provider, models, server,
    ``error.type``); *usage* is the answering attempt's (``None`` when none answered).
    """
    if names.provider_name not in attributes:
        attributes[names.provider_name] = "genrouter"  # nothing was tried: genrouter answered
    if info is not None and info.latency_ms is not None:
        seconds = info.latency_ms / 1000.0
    else:
        seconds = (time.time_ns() - start_ns) / 1e9
    instruments.duration.record(seconds, attributes)
    if stream and info is not None and info.ttft_ms is not None:
        instruments.ttfc.record(info.ttft_ms / 1000.0, attributes)
    if usage is not None:
        token_type = names.token_type
        instruments.tokens.record(usage.prompt_tokens, {**attributes, token_type: "input"})
        instruments.tokens.record(usage.completion_tokens, {**attributes, token_type: "output"})
        if info is not None:
            model = {"genrouter.model": info.model or ""}
            if info.estimated_cost_usd is not None:
                estimated = {**model, "genrouter.cost.kind": "estimated"}
                instruments.cost.add(info.estimated_cost_usd, estimated)
            if info.cost_usd is not None:
                instruments.cost.add(info.cost_usd, {**model, "genrouter.cost.kind": "actual"})
