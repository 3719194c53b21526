"""What genrouter's gateway adds to a chat completion, next to LiteLLM's proxy, under load.

Three targets, each in its own process, on loopback:

- ``direct``: the fast fake upstream itself (``bench/_gateway_upstream.py``), the floor;
- ``genrouter``: ``python -m genrouter serve`` with one model on that upstream;
- ``litellm``: LiteLLM's proxy (its own virtual environment, never a genrouter dependency)
  with one model on the same upstream; skipped with a note when it is not installed.

Both gateways run the same number of uvicorn workers (``--workers``, 1 by default), no keys,
no request logging. The load generator (``bench/_gateway_load.py``) keeps C keep-alive
connections busy (a closed loop) at C = 1, 64 and 512, non-streaming and streaming (a stream
is a role chunk, ``--chunks`` content chunks, a finish chunk and ``[DONE]``), and measures
latency p50/p99, TTFT for streams (send → first SSE event), throughput (answers per second;
for streams, content events delivered ÷ chunks per stream, so a slow target that completes
few whole streams in the window is still measured) and errors. It also reads each target's
CPU time per answer from ``/proc``: on a shared machine CPU time moves far less than
wall-clock numbers do.

To bound the machine's noise, every round measures every (kind, C) cell on every target in
a new random order, back to back; the report shows medians over rounds, and the added
latency and throughput ratios are taken per round (same conditions), then the median.

Targets from issue 14: p50 added latency ≤ 1 ms at 1 client (both kinds), throughput at 512
concurrent streams ≥ 3× LiteLLM's proxy, zero errors. Exit status 1 when genrouter misses one.

    python bench/gateway.py --quick                  # one short round (1-3 minutes)
    python bench/gateway.py                          # 3 rounds
    python bench/gateway.py --rounds 5 --duration 10 --max-s 60 --json out.json  # clean run

LiteLLM: ``python -m venv /work/venvs/litellm && /work/venvs/litellm/bin/pip install
'litellm[proxy]' httptools`` (``--litellm-venv`` or ``$GWBENCH_LITELLM_VENV`` point elsewhere).
uvloop and httptools for genrouter's gateway (its ``server`` extra) are taken from
``--server-extras`` (a ``pip install --target`` directory) when the running venv lacks them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The bench directory is not a package: its helper modules are imported from beside this file.
from _gateway_load import (
    LoadResult,
    chat_check,
    chat_request,
    median,
    percentile,
    run_load,
)
from _gateway_targets import (
    DEFAULT_SERVER_EXTRAS,
    ROOT,
    Target,
    litellm_venv,
    start_genrouter,
    start_litellm,
    start_upstream,
    stop,
    wait_ready,
    wait_until_idle,
    workdir,
)
from _gateway_upstream import piece

KINDS = ("request", "stream")
TARGET_NAMES = ("direct", "genrouter", "litellm")
ADDED_P50_TARGET_MS = 1.0
STREAM_RATIO_TARGET = 3.0
MARKER = b'"tok'  # once per content event: `"content":"tok7 "`


@dataclass
class Settings:
    """How long and how hard each run drives a target."""

    rounds: int
    clients: list[int]
    kinds: list[str]
    warmup_s: float
    duration_s: float
    max_s: float
    chunks: int
    settle_s: float


@dataclass
class Measured:
    """One run: one target, one (kind, C) cell, one round."""

    target: str
    kind: str
    clients: int
    round: int
    result: LoadResult
    throughput: float
    cpu_ms_per_answer: float
    upstream_cpu_ms_per_answer: float
    bench_cpu_share: float

    @property
    def p50(self) -> float:
        return median(self.result.latencies_ms)

    @property
    def p99(self) -> float:
        return percentile(self.result.latencies_ms, 0.99)

    @property
    def ttft50(self) -> float:
        return median(self.result.ttft_ms)

    @property
    def ttft99(self) -> float:
        return percentile(self.result.ttft_ms, 0.99)


@dataclass
class Bench:
    """The running targets and everything measured so far."""

    settings: Settings
    upstream: Target
    targets: list[Target]
    measured: list[Measured] = field(default_factory=list)


def _body(model: str, stream: bool) -> bytes:
    messages = [{"role": "user", "content": "Say something of about thirty-five tokens."}]
    body: dict[str, Any] = {"model": model, "messages": messages}
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


async def measure(bench: Bench, target: Target, kind: str, clients: int, round_: int) -> Measured:
    """One run of the load generator against *target*."""
    settings, stream = bench.settings, kind == "stream"
    request = chat_request(target.host, target.port, target.path, _body(target.model, stream), "x")

    def probe() -> dict[str, float]:
        return {
            "target": target.cpu_seconds(),
            "upstream": bench.upstream.cpu_seconds(),
            "bench": time.process_time(),
        }

    result = await run_load(
        target.host,
        target.port,
        request,
        chat_check(piece(settings.chunks - 1), stream=stream),
        clients=clients,
        warmup_s=settings.warmup_s,
        duration_s=settings.duration_s,
        max_s=settings.max_s,
        min_done=min(200, 2 * clients),
        cpu_probe=probe,
        marker=MARKER if stream else b"",
        drain_s=2.0,
    )
    answers = result.marks / settings.chunks if stream else float(result.completed)
    per_answer = 1000 / answers if answers else float("nan")
    return Measured(
        target=target.name,
        kind=kind,
        clients=clients,
        round=round_,
        result=result,
        throughput=answers / result.window_s if result.window_s else 0.0,
        cpu_ms_per_answer=result.cpu_s.get("target", 0.0) * per_answer,
        upstream_cpu_ms_per_answer=result.cpu_s.get("upstream", 0.0) * per_answer,
        bench_cpu_share=result.cpu_s.get("bench", 0.0) / result.window_s,
    )


async def run_rounds(bench: Bench) -> None:
    """Every round: every cell on every target, targets in a new random order per cell."""
    shuffler = random.Random(14)
    for round_ in range(bench.settings.rounds):
        for kind in bench.settings.kinds:
            for clients in bench.settings.clients:
                order = list(bench.targets)
                shuffler.shuffle(order)
                for target in order:
                    gc.collect()
                    measured = await measure(bench, target, kind, clients, round_)
                    bench.measured.append(measured)
                    print(_progress(measured), flush=True)
                    # Work a slow target abandoned (cancelled streams) must not bill the next.
                    await asyncio.to_thread(
                        wait_until_idle, target, limit_s=bench.settings.settle_s
                    )


def _progress(m: Measured) -> str:
    errors = f" errors={m.result.error_count}" if m.result.error_count else ""
    errors += f" unfinished={m.result.unfinished}" if m.result.unfinished else ""
    return (
        f"  round {m.round + 1} {m.kind:<7} C={m.clients:<3} {m.target:<9} "
        f"{m.throughput:8.1f}/s p50 {m.p50:9.2f} ms p99 {m.p99:9.2f} ms "
        f"n={len(m.result.latencies_ms)} window {m.result.window_s:.1f} s{errors}"
    )


def _med(values: list[float]) -> float:
    finite = [value for value in values if value == value]  # drop nan
    return statistics.median(finite) if finite else float("nan")


def _fmt(value: float, width: int = 9, digits: int = 2) -> str:
    return f"{'-':>{width}}" if value != value else f"{value:>{width}.{digits}f}"


def _rows(bench: Bench, name: str, kind: str, clients: int) -> list[Measured]:
    return [
        m for m in bench.measured if m.target == name and m.kind == kind and m.clients == clients
    ]


def _paired(bench: Bench, kind: str, clients: int, name: str, base: str, how: str) -> float:
    """The median over rounds of a per-round comparison of *name* with *base*."""
    values: list[float] = []
    for round_ in range(bench.settings.rounds):
        mine = [m for m in _rows(bench, name, kind, clients) if m.round == round_]
        theirs = [m for m in _rows(bench, base, kind, clients) if m.round == round_]
        if not mine or not theirs:
            continue
        a, b = mine[0], theirs[0]
        if how == "p50":
            values.append(a.p50 - b.p50)
        elif how == "p99":
            values.append(a.p99 - b.p99)
        elif b.throughput > 0:
            values.append(a.throughput / b.throughput)
    return _med(values)


def print_report(bench: Bench) -> dict[str, Any]:
    """Print the tables; return the summary (for --json)."""
    summary: dict[str, Any] = {"cells": []}
    names = [target.name for target in bench.targets]
    header = (
        f"{'target':<10} {'answers/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'TTFT p50':>9} "
        f"{'TTFT p99':>9} {'+p50 ms':>9} {'+p99 ms':>9} {'CPU ms/ans':>10} {'errors':>7} "
        f"{'n':>6}"
    )
    for kind in bench.settings.kinds:
        for clients in bench.settings.clients:
            print(f"\n{kind}, {clients} concurrent client{'s' if clients > 1 else ''}")
            print(header)
            print("-" * len(header))
            for name in names:
                rows = _rows(bench, name, kind, clients)
                cell = _cell(bench, rows, name, kind, clients)
                summary["cells"].append(cell)
                print(
                    f"{name:<10} {_fmt(cell['throughput'], 10, 1)} {_fmt(cell['p50_ms'])} "
                    f"{_fmt(cell['p99_ms'])} {_fmt(cell['ttft_p50_ms'])} "
                    f"{_fmt(cell['ttft_p99_ms'])} {_fmt(cell['added_p50_ms'])} "
                    f"{_fmt(cell['added_p99_ms'])} {_fmt(cell['cpu_ms_per_answer'], 10)} "
                    f"{cell['errors']:>7} {cell['samples']:>6}"
                )
            ratios = [
                (mine, base)
                for mine, base in (
                    ("genrouter", "direct"),
                    ("litellm", "direct"),
                    ("genrouter", "litellm"),
                )
                if mine in names and base in names
            ]
            if ratios:
                text = ", ".join(
                    f"{mine}/{base} {_fmt(_paired(bench, kind, clients, mine, base, 'x'), 0)}×"
                    for mine, base in ratios
                )
                print(f"throughput ratios (median of per-round ratios): {text}")
    return summary


def _cell(bench: Bench, rows: list[Measured], name: str, kind: str, clients: int) -> dict[str, Any]:
    errors: Counter[str] = Counter()
    for row in rows:
        errors.update(row.result.errors)
    base = "direct" if name != "direct" else None
    return {
        "target": name,
        "kind": kind,
        "clients": clients,
        "throughput": _med([row.throughput for row in rows]),
        "p50_ms": _med([row.p50 for row in rows]),
        "p99_ms": _med([row.p99 for row in rows]),
        "ttft_p50_ms": _med([row.ttft50 for row in rows]) if kind == "stream" else float("nan"),
        "ttft_p99_ms": _med([row.ttft99 for row in rows]) if kind == "stream" else float("nan"),
        "added_p50_ms": _paired(bench, kind, clients, name, base, "p50") if base else 0.0,
        "added_p99_ms": _paired(bench, kind, clients, name, base, "p99") if base else 0.0,
        "cpu_ms_per_answer": _med([row.cpu_ms_per_answer for row in rows]),
        "upstream_cpu_ms_per_answer": _med([row.upstream_cpu_ms_per_answer for row in rows]),
        "bench_cpu_share": _med([row.bench_cpu_share for row in rows]),
        "errors": sum(errors.values()),
        "error_examples": [text for text, _ in errors.most_common(3)],
        "samples": sum(len(row.result.latencies_ms) for row in rows),
        "windows_s": [round(row.result.window_s, 2) for row in rows],
    }


def verdicts(bench: Bench, summary: dict[str, Any]) -> bool:
    """Print the issue-14 targets met or missed by genrouter; return whether all were met."""
    names = {target.name for target in bench.targets}
    if "genrouter" not in names:
        print("\nno genrouter gateway measured: no verdicts")
        return True
    cells = {(c["target"], c["kind"], c["clients"]): c for c in summary["cells"]}
    ok = True
    print("\nissue-14 targets (genrouter):")
    for kind in bench.settings.kinds:
        cell = cells.get(("genrouter", kind, 1))
        if cell is not None:
            met = cell["added_p50_ms"] <= ADDED_P50_TARGET_MS
            ok = ok and met
            print(
                f"  p50 added at 1 client, {kind}: {cell['added_p50_ms']:.3f} ms "
                f"{'ok' if met else 'MISSED'} (target ≤ {ADDED_P50_TARGET_MS} ms)"
            )
    if "litellm" in names and "stream" in bench.settings.kinds and 512 in bench.settings.clients:
        ratio = _paired(bench, "stream", 512, "genrouter", "litellm", "x")
        if ratio != ratio:  # nan: LiteLLM delivered nothing in any window
            print(
                "  throughput at 512 streams vs LiteLLM: not measured (LiteLLM delivered no "
                "content within its windows; rerun with a longer --max-s)"
            )
        else:
            met = ratio >= STREAM_RATIO_TARGET
            ok = ok and met
            print(
                f"  throughput at 512 streams vs LiteLLM: {ratio:.2f}× "
                f"{'ok' if met else 'MISSED'} (target ≥ {STREAM_RATIO_TARGET}×)"
            )
    elif "litellm" not in names:
        print("  throughput at 512 streams vs LiteLLM: not measured (LiteLLM skipped)")
    errors = sum(c["errors"] for c in summary["cells"] if c["target"] == "genrouter")
    ok = ok and errors == 0
    print(f"  errors through genrouter: {errors} {'ok' if errors == 0 else 'MISSED'} (target 0)")
    return ok


def start_targets(args: argparse.Namespace, upstream: Target) -> list[Target]:
    """Start the gateways asked for, side by side; skip (with a note) those that cannot start."""
    where = workdir()
    launched: list[Target] = []
    if "genrouter" in args.targets:
        extras, checkout = args.server_extras, args.genrouter_path
        extra = json.loads(args.genrouter_config) if args.genrouter_config else None
        launched.append(start_genrouter(upstream, where, args.workers, extras, checkout, extra))
    if "litellm" in args.targets:
        try:
            venv = litellm_venv(args.litellm_venv)
            launched.append(start_litellm(upstream, where, args.workers, venv))
        except FileNotFoundError as exc:
            print(f"note: skipping litellm: {exc}")
    targets = [upstream] if "direct" in args.targets else []
    for target in launched:
        try:
            wait_ready(target)
        except RuntimeError as exc:
            stop(target)
            print(f"note: skipping {target.name}: it did not start ({exc}); see {target.log}")
            if target.log is not None:
                print("  " + "\n  ".join(target.log.read_text().splitlines()[-5:]))
            continue
        targets.append(target)
    return targets


async def check_targets(bench: Bench) -> None:
    """One request and one stream through each target, before anything is timed."""
    quick = Settings(1, [1], ["request", "stream"], 0.0, 0.2, 15.0, bench.settings.chunks, 0.0)
    probe = Bench(quick, bench.upstream, bench.targets)
    for target in list(bench.targets):
        for kind in KINDS:
            measured = await measure(probe, target, kind, 1, 0)
            errors = measured.result.errors
            if errors or not measured.result.latencies_ms:
                problem = next(iter(errors)) if errors else "no answer"
                print(f"note: {target.name} fails a {kind} ({problem}); skipping it")
                bench.targets.remove(target)
                if target is not bench.upstream:
                    stop(target)
                break


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="one short round (~1 min; ~3 with LiteLLM)"
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds (3; --quick: 1)")
    parser.add_argument("--duration", type=float, default=None, help="window s (4; quick 1)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up s (1; quick 0.3)")
    parser.add_argument("--max-s", type=float, default=None, help="window cap s (20; quick 3)")
    parser.add_argument("--clients", default="1,64,512", help="concurrency levels")
    parser.add_argument("--kinds", default="request,stream", help="request, stream or both")
    parser.add_argument("--targets", default=",".join(TARGET_NAMES), help="which targets")
    parser.add_argument("--chunks", type=int, default=35, help="content chunks per stream")
    parser.add_argument("--gap-ms", type=float, default=0.0, help="upstream pause per event")
    parser.add_argument("--workers", type=int, default=1, help="workers of each gateway")
    parser.add_argument("--litellm-venv", default=None, help="LiteLLM's venv (/work/venvs/litellm)")
    parser.add_argument(
        "--server-extras", default=DEFAULT_SERVER_EXTRAS, help="uvloop/httptools --target dir"
    )
    parser.add_argument(
        "--genrouter-path", default=str(ROOT), help="genrouter checkout to serve (this one)"
    )
    parser.add_argument(
        "--genrouter-config",
        default=None,
        help='JSON merged into genrouter\'s config, e.g. \'{"pool": {"max_connections": 1000}}\'',
    )
    parser.add_argument("--json", default=None, help="write the summary here")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    quick = args.quick

    def pick(value: float | None, normal: float, short: float) -> float:
        return value if value is not None else (short if quick else normal)

    return Settings(
        rounds=int(pick(args.rounds, 3, 1)),
        clients=[int(c) for c in args.clients.split(",")],
        kinds=[k for k in args.kinds.split(",") if k in KINDS],
        warmup_s=pick(args.warmup, 1.0, 0.3),
        duration_s=pick(args.duration, 4.0, 1.0),
        max_s=pick(args.max_s, 20.0, 3.0),
        chunks=args.chunks,
        settle_s=10.0 if quick else 30.0,
    )


async def main_async(args: argparse.Namespace) -> int:
    """Start the processes, check them, run the rounds, report."""
    args.targets = [name for name in args.targets.split(",") if name in TARGET_NAMES]
    settings = _settings(args)
    began = time.monotonic()
    upstream = start_upstream(args.chunks, args.gap_ms)
    targets: list[Target] = [upstream]
    try:
        targets = start_targets(args, upstream)
        bench = Bench(settings, upstream, targets)
        await check_targets(bench)
        for target in bench.targets:
            label = f"{target.name} {target.version}".strip()
            print(f"{label}: {target.stack}, port {target.port}")
        print(
            f"{settings.rounds} round(s), window {settings.duration_s} s (up to "
            f"{settings.max_s} s), warm-up {settings.warmup_s} s, {args.chunks} chunks per "
            f"stream, {args.workers} worker(s) per gateway\n"
        )
        gc.freeze()
        await run_rounds(bench)
        summary = print_report(bench)
        ok = verdicts(bench, summary)
        summary["versions"] = {t.name: t.version for t in bench.targets}
        summary["stacks"] = {t.name: t.stack for t in bench.targets}
        summary["settings"] = vars(settings) | {"workers": args.workers, "gap_ms": args.gap_ms}
        print(f"\ntotal {time.monotonic() - began:.0f} s")
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2, default=str))
        return 0 if ok else 1
    finally:
        for target in {id(t): t for t in [*targets, upstream]}.values():
            stop(target)


def main() -> int:
    """Command-line entry point."""
    return asyncio.run(main_async(_parser().parse_args()))


if __name__ == "__main__":
    sys.exit(main())
