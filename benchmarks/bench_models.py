"""AST-base on one 10 s clip: audiovis vs transformers' ASTForAudioClassification (sdpa), same weights.

Rows: the model forward alone (same input features), the whole analysis (front end + forward) against
transformers' feature extractor + model, and ``analyze(attention=True)`` against the plain ``analyze``.
Runs alternate between the two sides; each figure is the best of the runs (as in ``timeit``: on a shared
2-core machine other jobs only ever add time, and the best run is the one they disturbed least).
"""

from __future__ import annotations

import tempfile
import time
from typing import Callable

import numpy as np
import torch

from .common import alternating

RUNS = 7


def _best_times(first: Callable[[], object], second: Callable[[], object], runs: int = RUNS) -> tuple[float, float]:
    return alternating(first, second, rounds=runs)


def _row(benchmark: str, measure: str, ours: float, peer: str, theirs: float, target: float) -> dict:
    ratio = ours / theirs
    return {
        "benchmark": benchmark, "measure": measure, "value": round(ours * 1000, 1), "unit": "ms",
        "peer": peer, "peer_value": round(theirs * 1000, 1), "ratio": round(ratio, 3),
        "target": f"<= {target:.1f}x", "met": bool(ratio <= target),
    }


def run() -> list[dict]:
    from transformers import ASTFeatureExtractor, ASTForAudioClassification

    import audiovis as av

    torch.manual_seed(0)
    ours = av.ASTModel().eval()
    with tempfile.TemporaryDirectory() as tmp:
        ours.save_pretrained(tmp)
        theirs = ASTForAudioClassification.from_pretrained(tmp, attn_implementation="sdpa").eval()
        extractor = ASTFeatureExtractor.from_pretrained(tmp)
    rng = np.random.default_rng(0)
    t = np.arange(160000) / 16000
    wav = (0.3 * np.sin(2 * np.pi * 440 * t * (1 + t / 5)) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    audio = av.load_audio(wav, 16000)
    features = extractor(wav, sampling_rate=16000, return_tensors="pt")["input_values"]
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
    a, b = _best_times(ours_forward, theirs_forward)
    rows.append(_row("AST-base, 10 s clip", "forward (same features)", a, "transformers ASTForAudioClassification (sdpa)", b, 1.0))
    a, b = _best_times(lambda: ours.analyze(audio), theirs_pipeline)
    rows.append(_row("AST-base, 10 s clip", "analyze vs feature extractor + forward", a, "transformers ASTFeatureExtractor + ASTForAudioClassification (sdpa)", b, 1.0))
    a, b = _best_times(lambda: ours.analyze(audio, attention=True), lambda: ours.analyze(audio))
    rows.append(_row("AST-base, 10 s clip", "analyze(attention=True) vs analyze()", a, "audiovis analyze() without attention", b, 1.3))
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
