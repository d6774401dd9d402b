"""Run every benchmark of the project and write benchmarks/RESULTS.md.

    .venv/bin/python -m benchmarks.run [area ...]

Each ``benchmarks/bench_<area>.py`` exposes ``run() -> list[dict]``; figures are from one run on this
machine, ratios against the named peer. Naming areas reruns only those; the other areas' rows are kept
from benchmarks/results.json, the table's source, and the table says when and at which commit each area ran.
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


def commit() -> str:
    """The checked-out commit (``+changes`` when the tree differs from it)."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def _area(entry) -> dict:
    """An area's stored entry; early results.json files held the bare list of rows."""
    entry = entry if isinstance(entry, dict) else {"rows": entry, "date": "?", "commit": "?", "load": "?"}
    return {"machine": "not recorded", **entry}


def main(areas: list[str]) -> int:
    names = areas or sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))
    store = HERE / "results.json"
    kept = {k: _area(v) for k, v in json.loads(store.read_text()).items()} if areas and store.exists() else {}
    failures = []
    for name in names:
        print(f"== {name}", flush=True)
        try:
            module = importlib.import_module(f"benchmarks.bench_{name}")
            load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
            got = module.run()
            print_rows(got)
            kept[name] = {"rows": got, "date": datetime.datetime.now().isoformat(timespec="minutes"),
                          "commit": commit(), "load": load, "machine": machine()}
        except Exception:  # a failing benchmark is reported, the others still run
            failures.append((name, traceback.format_exc()))
            print(failures[-1][1], file=sys.stderr)
    store.write_text(json.dumps(kept, indent=1, default=float) + "\n")
    rows = [r for name in sorted(kept) for r in kept[name]["rows"]]
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{Path(sys.executable).name} -m benchmarks.run` on {datetime.date.today().isoformat()}.",
        f"This run's machine: {machine()}.",
        "Figures from one run; ratios against the named peer, both sides measured in that run. Each area ran",
        "as below (load average at its start: other jobs on the 2 cores slow both sides of a ratio; areas run",
        "on different days may have run on different CPUs, so compare figures across areas with care).",
        "",
        "| area | ran | commit | load average | machine |",
        "|---|---|---|---|---|",
        *(f"| {name} | {kept[name]['date']} | {kept[name]['commit']} | {kept[name]['load']} | {kept[name]['machine']} |"
          for name in sorted(kept)),
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
