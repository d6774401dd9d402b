"""Dataset explorer, kernel side: explore_dataset on a demo-model store, selection round trip, open a clip,
find similar; and the map's cost at 100 k clips (PCA of 100 k x 768 vectors, the jupyter-scatter widget).

    .venv/bin/python -m benchmarks.bench_dataset_explorer            # full sizes (a quiet machine)
    .venv/bin/python -m benchmarks.bench_dataset_explorer --small    # smoke run: tiny sizes, same code paths

Not measured here: the browser side of the targets (first paint, pan/zoom frame time, lasso -> kernel,
gallery drawn); those need a real-browser benchmark (tests/e2e harness), not written yet.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import print_rows, row


def _timed(fn, repeats: int = 3) -> float:
    """Median wall time (s) of ``fn()`` over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def store_rows(small: bool, tmp: Path) -> list[dict]:
    import audiovis as av
    from audiovis.datasets import SyntheticEvents

    demo = av.load_demo_model()
    n = 8 if small else 96
    data = SyntheticEvents(n, seed=11)
    paths = []
    import soundfile as sf

    for i in range(n):  # files, so clips can be opened from their source
        clip = data[i]
        path = tmp / f"clip{i}.wav"
        sf.write(path, clip.audio.waveform.numpy().T, clip.audio.sample_rate)
        paths.append(str(path))
    store = av.embed_dataset(paths, demo, tmp / "store", patches=True, progress=False)
    rows = []
    t = _timed(lambda: av.explore_dataset(store, demo), 1 if small else 3)
    rows.append(row("dataset_explorer", f"explore_dataset, {n} clips (kernel)", t * 1e3, "ms"))
    dx = av.explore_dataset(store, demo)
    ids = np.arange(len(dx.points) // 2)

    def select():
        dx.scatter.widget.selection = ids
        dx.scatter.widget.selection = np.zeros(0, np.int64)

    rows.append(row("dataset_explorer", "map selection -> dx.selection + table (kernel, x2)", _timed(select) * 1e3, "ms"))
    cid = dx.points["clip_id"][0]
    rows.append(row("dataset_explorer", "dx.open(clip) -> Explorer built (kernel)", _timed(lambda: dx.open(cid)) * 1e3,
                    "ms", target="<= 1.5 s painted (browser side not measured)"))
    dx.explorer.select([3, 4, 5])
    t = _timed(lambda: dx.find_similar(k=12))
    rows.append(row("dataset_explorer", f"find_similar k=12 over {n} clips' patches + gallery (kernel)", t * 1e3, "ms"))
    return rows


def map_rows(small: bool) -> list[dict]:
    import pandas as pd

    from audiovis.projections import project
    from audiovis.widgets.dataset_explorer import _jscatter

    n, dim = (2_000, 64) if small else (100_000, 768)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    t = time.perf_counter()
    xy = project(vectors)
    pca = time.perf_counter() - t
    frame = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "clip_id": [f"c{i}" for i in range(n)],
                          "label": pd.Categorical(rng.integers(0, 10, n).astype(str))})
    t = time.perf_counter()
    scatter = _jscatter().Scatter(data=frame, x="x", y="y", color_by="label", legend=True, tooltip=True)
    widget = scatter.widget
    build = time.perf_counter() - t
    t = time.perf_counter()
    widget.selection = np.arange(n // 10)
    select = time.perf_counter() - t
    return [
        row("dataset_explorer", f"PCA projection, {n} x {dim}", pca, "s"),
        row("dataset_explorer", f"jupyter-scatter widget, {n} points (kernel)", build, "s",
            target="first paint <= 2 s (browser not measured)"),
        row("dataset_explorer", f"set map selection, {n // 10} of {n} points (kernel)", select * 1e3, "ms"),
    ]


def run(small: bool = False) -> list[dict]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-dx-"))
    try:
        return store_rows(small, tmp) + map_rows(small)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    print_rows(run(small="--small" in sys.argv))
