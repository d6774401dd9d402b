"""Token pruning and merging where users call them: ``model.analyze(audio, keep_ratio=... | merge_ratio=...)``.

- AST-base shapes (random weights, one 8 s clip, 1212 patches): the public call with a reduction against
  plain ``model.analyze(audio)``, front end included on both sides; medians of the same number of
  alternating runs. Targets: keep 0.5 >= 1.8x, merge 0.5 >= 1.6x.
- The demo model on held-out SyntheticEvents clips through ``compute_tradeoff`` (front end + analyze per
  clip, medians of alternating rounds): top-1 agreement with the full model and mAP. Targets: merge 0.5
  and attention pruning 0.5 each >= 95 % agreement and >= 1.6x faster (the total per clip).

``AUDIOVIS_BENCH_SMOKE=1`` runs tiny sizes once (figures meaningless) to check the script.
"""

from __future__ import annotations

import numpy as np
import torch

from .common import alternating_medians, print_rows, row, smoke

ROUNDS = 5
HELD_OUT_CLIPS = 300
AST_TARGETS = {"keep_ratio=0.5": 1.8, "merge_ratio=0.5": 1.6}
DEMO_SPEEDUP = 1.6
DEMO_AGREEMENT = 0.95


def _speech_like(seconds: float = 8.0, sr: int = 16000) -> np.ndarray:
    """Harmonic glides with syllable-rate gating over a little noise: a busy spectrogram, like speech."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    gate = (np.sin(2 * np.pi * 4 * t) > -0.2).astype(float)
    return (0.2 * voiced * gate + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def ast_base_rows() -> list[dict]:
    import audiovis as av

    torch.manual_seed(0)
    config = av.ASTConfig(num_hidden_layers=2) if smoke() else av.ASTConfig()
    model = av.ASTModel(config).eval()
    audio = av.load_audio(_speech_like(), 16000)
    settings = {
        "analyze()": {},
        "keep_ratio=0.5": dict(keep_ratio=0.5),
        "keep_ratio=0.5, keep_by='attention'": dict(keep_ratio=0.5, keep_by="attention"),
        "keep_ratio=0.25": dict(keep_ratio=0.25),
        "merge_ratio=0.5": dict(merge_ratio=0.5),
        "merge_ratio=0.25": dict(merge_ratio=0.25),
    }
    times = alternating_medians({k: (lambda o=o: model.analyze(audio, **o)) for k, o in settings.items()},
                                rounds=1 if smoke() else ROUNDS)
    base = times["analyze()"]
    rows = []
    for name, seconds in times.items():
        if name == "analyze()":
            continue
        speedup = base / seconds
        target = AST_TARGETS.get(name)
        rows.append(row("pruning", f"AST-base 8 s clip: analyze({name}) vs analyze(), public call", speedup, "x",
                        peer="analyze() ms", peer_value=base * 1000, ratio=speedup,
                        target=f">= {target}x" if target else None, met=speedup >= target if target else None))
    return rows


def demo_rows() -> list[dict]:
    import audiovis as av
    from audiovis.datasets import SyntheticEvents
    from audiovis.demo import EVAL_SEED

    model = av.load_demo_model()
    clips = 6 if smoke() else HELD_OUT_CLIPS
    data = SyntheticEvents(clips, seed=EVAL_SEED)
    methods = ["prune 0.5", "prune attention 0.5", "merge 0.5", "merge 0.25", "stride 16"]
    result = av.compute_tradeoff(model, data, methods, repeats=1 if smoke() else 3, progress=False)
    full = result.row("full")
    rows = [row("pruning", f"demo model, {clips} held-out clips: {result.score_name}", full["score"], "")]
    for r in result.rows[1:]:
        target = r["method"] in ("merge 0.5", "prune attention 0.5")
        rows.append(row("pruning", f"demo {r['method']}: speed-up per clip (front end + analyze)", r["speedup"], "x",
                        peer="full ms / clip", peer_value=full["time_ms"], ratio=r["speedup"],
                        target=f">= {DEMO_SPEEDUP}x" if target else None, met=r["speedup"] >= DEMO_SPEEDUP if target else None))
        rows.append(row("pruning", f"demo {r['method']}: speed-up of the model part (analyze only)", r["model_speedup"], "x"))
        rows.append(row("pruning", f"demo {r['method']}: top-1 agreement", r["agreement"], "",
                        target=f">= {DEMO_AGREEMENT:.0%}" if target else None,
                        met=r["agreement"] >= DEMO_AGREEMENT if target else None))
        rows.append(row("pruning", f"demo {r['method']}: {result.score_name}", r["score"], ""))
        rows.append(row("pruning", f"demo {r['method']}: MACs share", r["macs_ratio"], ""))
    return rows


def run() -> list[dict]:
    return ast_base_rows() + demo_rows()


if __name__ == "__main__":
    print_rows(run())
