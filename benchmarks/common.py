"""Small shared pieces of the benchmarks: timing and the row format."""

from __future__ import annotations

import statistics
import time
from typing import Callable


# Renders the built viewer bundle in a bare page with a stand-in anywidget model (no Jupyter), for
# browser timings; args: [bundle source, css, state, {trait: base64 buffer}, width px].
STANDALONE_VIEWER_JS = """
async ([bundle, css, state, buffers, width]) => {
  const style = document.createElement('style'); style.textContent = css; document.head.append(style);
  const mod = await import(URL.createObjectURL(new Blob([bundle], {type: 'text/javascript'})));
  const bin = (b64) => { const s = atob(b64); const u = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i); return new DataView(u.buffer); };
  for (const [key, b64] of Object.entries(buffers)) state[key] = {...state[key], view: bin(b64)};
  const handlers = {};
  const model = {
    get: (k) => state[k],
    set: (k, v) => { state[k] = v; for (const h of handlers['change:' + k] ?? []) h(); },
    on: (e, h) => { (handlers[e] ??= []).push(h); },
    off: (e, h) => { handlers[e] = (handlers[e] ?? []).filter((x) => x !== h); },
    save_changes: () => {}, send: () => {},
  };
  window.__model = model;
  const host = document.createElement('div'); host.style.width = width + 'px'; document.body.append(host);
  window.__cleanup = await mod.default.render({model, el: host});
}
"""


# JupyterLab (in the page): append a code cell holding `source` to the notebook at `path` and make it the
# active one; the start of the page scripts that time a cell from run to result.
JS_APPEND_CELL = """
  const app = window.jupyterapp;
  const notebook = __panel(path).content;
  const index = notebook.model.cells.length;
  notebook.model.sharedModel.insertCell(index, {cell_type: 'code', source});
  notebook.activeCellIndex = index;
  notebook.deselectAll();
"""


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


def paired_medians(a: Callable[[], object], b: Callable[[], object], rounds: int = 5) -> tuple[float, float]:
    """Median times of ``a`` and ``b`` over the same number of runs, in alternation after one warm-up each:
    like with like against drifting machine load (no side gets more tries at a lucky minimum)."""
    a(), b()
    ta, tb = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        a()
        ta.append(time.perf_counter() - start)
        start = time.perf_counter()
        b()
        tb.append(time.perf_counter() - start)
    return statistics.median(ta), statistics.median(tb)


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


def alternating_medians(fns: dict[str, Callable[[], object]], rounds: int = 5) -> dict[str, float]:
    """Median wall time (s) of each of ``fns`` over ``rounds`` rounds in which they take turns (the same number
    of runs on every side, fair against drifting load); one warm-up call each first."""
    import statistics

    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def smoke() -> bool:
    """``AUDIOVIS_BENCH_SMOKE=1``: tiny sizes and one round, to check a benchmark runs (figures meaningless)."""
    import os

    return os.environ.get("AUDIOVIS_BENCH_SMOKE", "") not in ("", "0")


def ast_base_peer(model):
    """transformers' ASTForAudioClassification (sdpa) on ``model``'s weights, its feature extractor, and the
    benchmarks' 10 s clip (a 440 Hz sweep plus noise) as a waveform, an ``av.Audio`` and the peer's features.

    Returns:
        ``(theirs, extractor, wav, audio, features)``.
    """
    import tempfile

    import numpy as np
    from transformers import ASTFeatureExtractor, ASTForAudioClassification

    import audiovis as av

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        theirs = ASTForAudioClassification.from_pretrained(tmp, attn_implementation="sdpa").eval()
        extractor = ASTFeatureExtractor.from_pretrained(tmp)
    rng = np.random.default_rng(0)
    t = np.arange(160000) / 16000
    wav = (0.3 * np.sin(2 * np.pi * 440 * t * (1 + t / 5)) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    features = extractor(wav, sampling_rate=16000, return_tensors="pt")["input_values"]
    return theirs, extractor, wav, av.load_audio(wav, 16000), features
