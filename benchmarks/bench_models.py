"""AST-base on one 10 s clip: audiovis vs transformers' ASTForAudioClassification (sdpa), same weights.

Rows: the model forward alone (same input features), the whole analysis (front end + forward) against
transformers' feature extractor + model, and ``analyze(attention=True)`` against the plain ``analyze``.
Runs alternate between the two sides; each figure is the median of the same number of runs on each side.
"""

from __future__ import annotations

from typing import Callable

import torch

from .common import ast_base_peer, paired_medians

RUNS = 7


def _median_times(first: Callable[[], object], second: Callable[[], object], runs: int = RUNS) -> tuple[float, float]:
    return paired_medians(first, second, rounds=runs)


def _row(benchmark: str, measure: str, ours: float, peer: str, theirs: float, target: float) -> dict:
    ratio = ours / theirs
    return {
        "benchmark": benchmark, "measure": measure, "value": round(ours * 1000, 1), "unit": "ms",
        "peer": peer, "peer_value": round(theirs * 1000, 1), "ratio": round(ratio, 3),
        "target": f"<= {target:.1f}x", "met": bool(ratio <= target),
    }


def run() -> list[dict]:
    import audiovis as av

    torch.manual_seed(0)
    ours = av.ASTModel().eval()
    theirs, extractor, wav, audio, features = ast_base_peer(ours)
    x = features.transpose(1, 2).contiguous()
    with torch.inference_mode():
        gap = (ours(x) - theirs(features).logits).abs().max().item()
    if gap > 1e-3:
        raise RuntimeError(f"the two models disagree (max logit gap {gap}); the timing would compare different work")

    def ours_forward():
        with torch.inference_mode():
            ours(x)

    def theirs_forward():
        with torch.inference_mode():
            theirs(features)

    def theirs_pipeline():
        with torch.inference_mode():
            theirs(**extractor(wav, sampling_rate=16000, return_tensors="pt"))

    rows = []
    a, b = _median_times(ours_forward, theirs_forward)
    rows.append(_row("AST-base, 10 s clip", "forward (same features)", a, "transformers ASTForAudioClassification (sdpa)", b, 1.0))
    a, b = _median_times(lambda: ours.analyze(audio), theirs_pipeline)
    rows.append(_row("AST-base, 10 s clip", "analyze vs feature extractor + forward", a, "transformers ASTFeatureExtractor + ASTForAudioClassification (sdpa)", b, 1.0))
    a, b = _median_times(lambda: ours.analyze(audio, attention=True), lambda: ours.analyze(audio))
    rows.append(_row("AST-base, 10 s clip", "analyze(attention=True) vs analyze()", a, "audiovis analyze() without attention", b, 1.3))
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
