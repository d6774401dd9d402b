"""Build the static HTML page of every tutorial notebook (notebooks/*.ipynb) into a folder any static
server can host: ``.venv/bin/python docs/build_tutorials.py [--out docs/_build/tutorials] [--only 01 03]``.

Each notebook is executed (``python -m audiovis.export NOTEBOOK --execute``), so its widgets render from
fresh widget state, offline; an ``index.html`` links the pages. The folder is git-ignored. A notebook
that fails is reported and the others are still built; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import html
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audiovis.export import export_notebook  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "_build" / "tutorials", help="output folder")
    parser.add_argument("--only", nargs="*", default=None, help="notebook name prefixes to build (default: all)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if args.only:
        notebooks = [nb for nb in notebooks if any(nb.name.startswith(p) for p in args.only)]
    if not notebooks:
        print("no tutorial notebook matches", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    built, failed = [], []
    for nb in notebooks:
        started = time.perf_counter()
        print(f"{nb.name}: executing and exporting ...", flush=True)
        try:
            report = export_notebook(nb, args.out / f"{nb.stem}.html", execute=True, timeout=args.timeout)
        except Exception as exc:  # report and go on with the others
            print(f"{nb.name}: FAILED: {exc}", file=sys.stderr)
            failed.append(nb.name)
            continue
        print(f"  {report} in {time.perf_counter() - started:.0f} s")
        built.append(report.path.name)
    links = "\n".join(f'<li><a href="{html.escape(name)}">{html.escape(name[:-5])}</a></li>' for name in built)
    (args.out / "index.html").write_text(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>audiovis tutorials</title></head>\n"
        f"<body><h1>audiovis tutorials</h1>\n<ul>\n{links}\n</ul></body></html>\n",
        encoding="utf-8",
    )
    print(f"{len(built)} page(s) in {args.out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
