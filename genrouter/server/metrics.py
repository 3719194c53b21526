"""The gateway's metrics, in Prometheus's text exposition format (version 0.0.4).

Written by hand rather than with ``prometheus_client``: the gateway needs counters and
fixed-bucket histograms only, an observation is a dict update (no locks: one event loop per
process), and nothing new is installed.

With several worker processes each keeps its own numbers and writes a snapshot (JSON) to a
directory every second and when it stops; the worker that answers ``GET /metrics`` sums
every snapshot there with its own live numbers, so a scrape sees the whole server whichever
worker answers (counters and histograms add up; a stopped worker's last snapshot stays, so
counters never go backwards). Circuit state is read live from the answering worker's view
(shared between workers when ``state`` is on Redis).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from bisect import bisect_left
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["LATENCY_BUCKETS", "Metrics", "render"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

_HELP = {
    "genrouter_gateway_requests_total": ("counter", "Requests answered, by model and status."),
    "genrouter_gateway_errors_total": ("counter", "Error answers and broken streams, by type."),
    "genrouter_gateway_request_duration_seconds": (
        "histogram",
        "Time from request to the end of the answer (stream: the last event).",
    ),
    "genrouter_gateway_ttft_seconds": (
        "histogram",
        "Time from request to a stream's first content event.",
    ),
    "genrouter_gateway_tokens_total": ("counter", "Tokens reported by providers, by model."),
    "genrouter_gateway_cost_usd_total": ("counter", "Spend in USD, by model."),
    "genrouter_gateway_circuit_state": (
        "gauge",
        "Circuit breaker per model: 0 closed, 1 half-open, 2 open.",
    ),
    "genrouter_gateway_streams_open": ("gauge", "Streams being sent now (this process)."),
}

Labels = tuple[tuple[str, str], ...]
_INF = 'le="+Inf"'


class Metrics:
    """Counters and histograms of one gateway process."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, Labels], float] = {}
        self.histograms: dict[tuple[str, Labels], list[float]] = {}  # buckets…, sum, count
        self.streams_open = 0

    def count(self, name: str, labels: Labels, amount: float = 1.0) -> None:
        key = (name, labels)
        self.counters[key] = self.counters.get(key, 0.0) + amount

    def observe(self, name: str, labels: Labels, seconds: float) -> None:
        key = (name, labels)
        row = self.histograms.get(key)
        if row is None:
            row = self.histograms[key] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        i = bisect_left(LATENCY_BUCKETS, seconds)  # the first bucket with seconds <= bound
        if i < len(LATENCY_BUCKETS) and seconds <= LATENCY_BUCKETS[i]:  # (NaN: none)
            row[i] += 1
        row[-2] += seconds
        row[-1] += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "counters": [
                [n, list(map(list, labels)), v] for (n, labels), v in self.counters.items()
            ],
            "histograms": [
                [n, list(map(list, labels)), row] for (n, labels), row in self.histograms.items()
            ],
        }

    def merge(self, snapshot: dict[str, Any]) -> None:
        for name, labels, value in snapshot.get("counters", ()):
            self.count(name, tuple((str(k), str(v)) for k, v in labels), float(value))
        for name, labels, row in snapshot.get("histograms", ()):
            key = (name, tuple((str(k), str(v)) for k, v in labels))
            mine = self.histograms.setdefault(key, [0.0] * (len(LATENCY_BUCKETS) + 2))
            for i, value in enumerate(row[: len(mine)]):
                mine[i] += float(value)

    def write_snapshot(self, directory: Path) -> None:
        """Write this process's numbers to *directory* (atomically: write, then rename)."""
        path = directory / f"worker-{os.getpid()}.json"
        tmp = path.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(self.snapshot()), encoding="utf-8")
            tmp.replace(path)

    def combined(self, directory: Path | None) -> Metrics:
        """These numbers plus every other worker's last snapshot in *directory*."""
        if directory is None:
            return self
        total = Metrics()
        total.merge(self.snapshot())
        total.streams_open = self.streams_open
        mine = f"worker-{os.getpid()}.json"
        with contextlib.suppress(OSError):
            for path in directory.glob("worker-*.json"):
                if path.name == mine:
                    continue
                with contextlib.suppress(OSError, ValueError):
                    total.merge(json.loads(path.read_text(encoding="utf-8")))
        return total


def _labels(labels: Labels, extra: str = "") -> str:
    def esc(value: str) -> str:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    parts = [f'{k}="{esc(v)}"' for k, v in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if value != int(value) else str(int(value))


def render(metrics: Metrics, circuits: Iterable[tuple[str, str]]) -> bytes:
    """The text exposition of *metrics* plus a gauge per ``(model, state)`` in *circuits*."""
    lines: list[str] = []
    by_family: dict[str, list[str]] = {name: [] for name in _HELP}
    for (name, labels), value in sorted(metrics.counters.items()):
        by_family.setdefault(name, []).append(f"{name}{_labels(labels)} {_number(value)}")
    for (name, labels), row in sorted(metrics.histograms.items()):
        running = 0.0
        rows = by_family.setdefault(name, [])
        for bound, value in zip(LATENCY_BUCKETS, row, strict=False):
            running += value
            le = 'le="' + str(bound) + '"'
            rows.append(f"{name}_bucket{_labels(labels, le)} {_number(running)}")
        rows.append(f"{name}_bucket{_labels(labels, _INF)} {_number(row[-1])}")
        rows.append(f"{name}_sum{_labels(labels)} {_number(row[-2])}")
        rows.append(f"{name}_count{_labels(labels)} {_number(row[-1])}")
    states = {"closed": 0, "half_open": 1, "open": 2}
    by_family["genrouter_gateway_circuit_state"] = [
        f"genrouter_gateway_circuit_state{_labels((('model', model),))} {states.get(state, 0)}"
        for model, state in sorted(circuits)
    ]
    by_family["genrouter_gateway_streams_open"] = [
        f"genrouter_gateway_streams_open {metrics.streams_open}"
    ]
    for name, rows in by_family.items():
        kind, text = _HELP.get(name, ("untyped", name))
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(rows)
    return ("\n".join(lines) + "\n").encode()
