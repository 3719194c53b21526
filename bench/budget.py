"""What a budget check costs as settled requests pile up: 10 against 1,000,000.

The budget keeps a running sum per time bucket (``genrouter.routing.budget``), so
``try_reserve`` (what routing calls once per request) should cost the same however many
requests were settled within the window. Before, every settled entry was kept and summed:
0.36 ms at 10k entries, 4.4 ms at 100k, and 1M did not finish in 300 s.

    python bench/budget.py [--checks 20000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from genrouter.config import BudgetConfig
from genrouter.routing.budget import Budget

SIZES = (10, 1_000, 100_000, 1_000_000)
WINDOW_S = 86_400.0


def filled(settled: int) -> Budget:
    """A budget with *settled* requests settled within one window (none has expired)."""
    budget = Budget(BudgetConfig(limit_usd=1e12, window_s=WINDOW_S))
    step = (WINDOW_S / 2) / settled
    for i in range(settled):
        budget.settle(budget.reserve(0.001), 0.001, now=i * step)
    return budget


def check_cost_us(budget: Budget, checks: int, now: float) -> list[float]:
    """Microseconds per ``try_reserve`` + ``release``, in 10 batches."""
    per_batch = max(checks // 10, 1)
    batches = []
    for _ in range(10):
        started = time.perf_counter()
        for _ in range(per_batch):
            reservation = budget.try_reserve(0.001, now)
            if reservation is not None:
                budget.release(reservation)
        batches.append((time.perf_counter() - started) / per_batch * 1e6)
    return batches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--checks", type=int, default=20_000, help="checks timed per size")
    args = parser.parse_args()
    print(f"{'settled requests':>17} {'fill s':>8} {'check µs (median)':>18} {'buckets':>8}")
    print("-" * 56)
    medians = []
    for settled in SIZES:
        started = time.perf_counter()
        budget = filled(settled)
        fill_s = time.perf_counter() - started
        median = statistics.median(check_cost_us(budget, args.checks, WINDOW_S / 2))
        medians.append(median)
        print(f"{settled:>17,} {fill_s:>8.2f} {median:>18.2f} {len(budget.spent):>8}")
    ratio = medians[-1] / medians[0]
    print(f"\n1M settled / 10 settled: {ratio:.2f}x per check")
    return 0 if ratio < 3 else 1


if __name__ == "__main__":
    sys.exit(main())
