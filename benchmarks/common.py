"""Small shared pieces of the benchmarks: timing and the row format."""

from __future__ import annotations

import time
from typing import Callable


def best_of(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Best wall time (s) of ``repeat`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def alternating(a: Callable[[], object], b: Callable[[], object], rounds: int = 5) -> tuple[float, float]:
    """Best times of ``a`` and ``b`` run in alternation (fair against drifting machine load)."""
    a(), b()
    ta = tb = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        a()
        ta = min(ta, time.perf_counter() - start)
        start = time.perf_counter()
        b()
        tb = min(tb, time.perf_counter() - start)
    return ta, tb


def row(benchmark: str, measure: str, value: float, unit: str, *, peer: str | None = None,
        peer_value: float | None = None, target: str | None = None, met: bool | None = None,
        ratio: float | None = None) -> dict:
    """One result row; ``ratio`` defaults to value / peer_value."""
    if ratio is None and peer_value:
        ratio = value / peer_value
    return dict(benchmark=benchmark, measure=measure, value=value, unit=unit, peer=peer,
                peer_value=peer_value, ratio=ratio, target=target, met=met)


def print_rows(rows: list[dict]) -> None:
    for r in rows:
        ratio = f"  ratio {r['ratio']:.3g}" if r.get("ratio") is not None else ""
        peer = f"  vs {r['peer']} {r['peer_value']:.4g}" if r.get("peer") else ""
        met = "" if r.get("met") is None else ("  [met]" if r["met"] else "  [MISSED]")
        print(f"{r['benchmark']:<14} {r['measure']:<48} {r['value']:.4g} {r['unit']}{peer}{ratio}"
              f"  {r.get('target') or ''}{met}")
