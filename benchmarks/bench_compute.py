"""Lower precision: ``av.quantize(model, "int8" | "bf16")`` timed through ``analyze`` and checked for fidelity.

- AST-base (random weights, one 10 s clip): ``quantize(model, p).analyze(audio)`` (front end included)
  against transformers' fp32 ``ASTForAudioClassification`` (sdpa) forward on the same weights (features
  ready: the peer does less work). Target >= 1.8x each. Quantize + prune 0.5 against the fp32 unpruned
  ``analyze``: target >= 3x. Medians of the same number of alternating runs.
- The demo model on held-out SyntheticEvents clips: int8 and bf16 top-1 agreement with fp32 >= 99 %, mAP
  within 0.005.

``AUDIOVIS_BENCH_SMOKE=1`` runs tiny sizes once (figures meaningless) to check the script.
"""

from __future__ import annotations

import torch

from .common import alternating_medians, ast_base_peer, print_rows, row, smoke

ROUNDS = 5
HELD_OUT_CLIPS = 300
SPEEDUP_TARGET = 1.8
COMBINED_TARGET = 3.0
AGREEMENT_TARGET = 0.99
MAP_TOLERANCE = 0.005


def _precisions() -> list[str]:
    from audiovis.models.precision import bf16_support

    return ["int8"] + ([] if bf16_support() else ["bf16"])


def ast_base_rows() -> list[dict]:
    import audiovis as av

    torch.manual_seed(0)
    model = av.ASTModel(av.ASTConfig(num_hidden_layers=2) if smoke() else av.ASTConfig()).eval()
    theirs, _, _, audio, features = ast_base_peer(model)
    fast = {p: av.quantize(model, p) for p in _precisions()}

    def peer():
        with torch.inference_mode():
            theirs(features)

    fns = {"transformers fp32": peer, "fp32 analyze()": lambda: model.analyze(audio)}
    for p, m in fast.items():
        fns[f"{p} analyze()"] = lambda m=m: m.analyze(audio)
        fns[f"{p} analyze(keep_ratio=0.5)"] = lambda m=m: m.analyze(audio, keep_ratio=0.5)
    times = alternating_medians(fns, rounds=1 if smoke() else ROUNDS)
    rows = []
    for p in fast:
        ratio = times["transformers fp32"] / times[f"{p} analyze()"]
        rows.append(row("compute", f"AST-base 10 s: quantize(model, '{p}').analyze(audio) vs transformers fp32 sdpa forward",
                        ratio, "x", peer="transformers ms", peer_value=times["transformers fp32"] * 1000, ratio=ratio,
                        target=f">= {SPEEDUP_TARGET}x", met=ratio >= SPEEDUP_TARGET))
        combined = times["fp32 analyze()"] / times[f"{p} analyze(keep_ratio=0.5)"]
        rows.append(row("compute", f"AST-base 10 s: {p} + keep_ratio=0.5 analyze vs fp32 analyze()", combined, "x",
                        peer="fp32 analyze() ms", peer_value=times["fp32 analyze()"] * 1000, ratio=combined,
                        target=f">= {COMBINED_TARGET}x", met=combined >= COMBINED_TARGET))
    return rows


def demo_rows() -> list[dict]:
    import audiovis as av
    from audiovis.datasets import SyntheticEvents
    from audiovis.demo import EVAL_SEED

    model = av.load_demo_model()
    clips = 6 if smoke() else HELD_OUT_CLIPS
    data = SyntheticEvents(clips, seed=EVAL_SEED)
    result = av.compute_tradeoff(model, data, _precisions(), repeats=1 if smoke() else 3, progress=False)
    full = result.row("full")
    rows = []
    for p in _precisions():
        r = result.row(p)
        rows.append(row("compute", f"demo {p}, {clips} held-out clips: top-1 agreement with fp32", r["agreement"], "",
                        target=f">= {AGREEMENT_TARGET:.0%}", met=r["agreement"] >= AGREEMENT_TARGET))
        gap = abs(r["score"] - full["score"])
        rows.append(row("compute", f"demo {p}: |mAP - fp32 mAP| (fp32 {full['score']:.4f})", gap, "",
                        target=f"<= {MAP_TOLERANCE}", met=gap <= MAP_TOLERANCE))
        rows.append(row("compute", f"demo {p}: speed-up per clip (front end + analyze)", r["speedup"], "x",
                        peer="fp32 ms / clip", peer_value=full["time_ms"], ratio=r["speedup"]))
    return rows


def run() -> list[dict]:
    return ast_base_rows() + demo_rows()


if __name__ == "__main__":
    print_rows(run())
