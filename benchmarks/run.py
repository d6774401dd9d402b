"""Run every benchmark of the project and write benchmarks/RESULTS.md.

    .venv/bin/python -m benchmarks.run [area ...]

Each ``benchmarks/bench_<area>.py`` exposes ``run() -> list[dict]``; figures are from one run on this
machine, ratios against the named peer. Naming areas reruns only those; the other areas' rows are kept
from benchmarks/results.json, the table's source.
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import sys
import traceback
from pathlib import Path

from .common import print_rows

HERE = Path(__file__).parent


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores{mem}; Python {platform.python_version()}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), {platform.system()} {platform.release()}")


def fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def main(areas: list[str]) -> int:
    names = areas or sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))
    store = HERE / "results.json"
    kept = json.loads(store.read_text()) if areas and store.exists() else {}
    failures = []
    for name in names:
        print(f"== {name}", flush=True)
        try:
            module = importlib.import_module(f"benchmarks.bench_{name}")
            got = module.run()
            print_rows(got)
            kept[name] = got
        except Exception:  # a failing benchmark is reported, the others still run
            failures.append((name, traceback.format_exc()))
            print(failures[-1][1], file=sys.stderr)
    store.write_text(json.dumps(kept, indent=1, default=float) + "\n")
    rows = [r for name in sorted(kept) for r in kept[name]]
    lines = [
        "# Benchmark results",
        "",
        f"Run `{Path(sys.executable).name} -m benchmarks.run` on {datetime.date.today().isoformat()}.",
        f"Machine: {machine()}.",
        "Figures from one run; ratios against the named peer. Load average when this table was written: "
        + ", ".join(f"{v:.1f}" for v in os.getloadavg()) + " (other jobs on the 2 cores slow both sides of a ratio).",
        "",
        "| area | measure | value | unit | peer | peer value | ratio | target | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = "" if r.get("met") is None else ("yes" if r["met"] else "**no**")
        lines.append(f"| {r['benchmark']} | {r['measure']} | {fmt(r['value'])} | {r['unit']} | {r.get('peer') or ''} | "
                     f"{fmt(r.get('peer_value'))} | {fmt(r.get('ratio'))} | {r.get('target') or ''} | {met} |")
    for name, tb in failures:
        lines += ["", f"**{name} failed:**", "```", tb.strip().splitlines()[-1], "```"]
    (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {HERE / 'RESULTS.md'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
