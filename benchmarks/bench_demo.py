"""Demo model: held-out quality (mAP, pointing game vs a random patch), training cost, analysis latency.

Training time is judged on an extrapolation from optimiser steps timed now with the shipped defaults
(2 torch threads; 1 thread shown too), since a full run takes tens of minutes; the wall time the shipped
run recorded in its ``train_log.json`` is shown beside it without a verdict (another machine, another day).
"""

from __future__ import annotations

import json
import time

import torch

from .common import best_of, print_rows, row

EVAL_CLIPS = 200


def _training_estimate(config, threads: int, repeat: int = 10) -> tuple[float, float]:
    """(seconds per optimiser step measured now, estimated minutes for the default schedule)."""
    from audiovis.datasets import SyntheticEvents
    from audiovis.demo.features import compute_features
    from audiovis.demo.train import TrainOptions
    from audiovis.models.ast import ASTModel

    options = TrainOptions()
    start = time.perf_counter()
    features = compute_features(SyntheticEvents(32, seed=0), num_mel_bins=128, max_length=options.max_length)
    per_clip_features = (time.perf_counter() - start) / len(features)
    torch.set_num_threads(threads)
    model = ASTModel(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, y = features.batch(torch.arange(options.batch_size), config.fbank_mean, config.fbank_std)

    def step() -> None:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    per_step = best_of(step, repeat=repeat, warmup=2)
    steps = min(options.max_steps or 10**9, options.epochs * (options.train_clips // options.batch_size))
    minutes = (per_step * steps + per_clip_features * options.train_clips) / 60
    return per_step, minutes


def run(*, eval_clips: int = EVAL_CLIPS, step_repeat: int = 10) -> list[dict]:
    """Every row; ``eval_clips`` and ``step_repeat`` (timed optimiser steps) shrink a smoke run."""
    import audiovis as av
    from audiovis.demo import WEIGHTS_DIR
    from audiovis.demo.evaluate import evaluate

    torch.set_num_threads(2)
    model = av.load_demo_model()
    report = evaluate(model, num_clips=eval_clips)
    clip = av.datasets.SyntheticEvents(1, seed=123)[0].audio
    analyze = best_of(lambda: model.analyze(clip), repeat=5)
    saliency = best_of(lambda: model.analyze(clip).saliency(0), repeat=3)
    estimates = {threads: _training_estimate(model.config, threads, step_repeat) for threads in (1, 2)}
    torch.set_num_threads(2)
    log = json.loads((WEIGHTS_DIR / "train_log.json").read_text(encoding="utf-8"))
    shipped = (log["seconds"]["features"] + log["seconds"]["training"]) / 60
    s, t = report.strict, report.tolerant
    bench = "demo"
    return [
        row(bench, f"held-out clip mAP ({eval_clips} clips)", report.mean_ap, "", target=">= 0.9", met=report.mean_ap >= 0.9),
        row(bench, "pointing game, saliency(class), strict", s.saliency, "share", peer="random patch",
            peer_value=s.random, target=">= random + 0.3", met=s.saliency_margin >= 0.3),
        row(bench, "pointing game, saliency(class), tolerant", t.saliency, "share", peer="random patch",
            peer_value=t.random, target=">= random + 0.3", met=t.saliency_margin >= 0.3),
        row(bench, "pointing game, rollout(), strict", s.rollout, "share", peer="random patch", peer_value=s.random),
        row(bench, "rollout() argmax inside some event (per clip)", report.rollout_any, "share", peer="random patch",
            peer_value=report.random_any, target=">= random + 0.3", met=report.rollout_any - report.random_any >= 0.3),
        row(bench, "analyze() on one 4 s clip", analyze * 1000, "ms"),
        row(bench, "analyze() + saliency(class)", saliency * 1000, "ms"),
        row(bench, f"training time the shipped run recorded (train_log.json: features + training, {log['threads']} "
            "threads; for reference, the verdict is on the estimate measured now)", shipped, "min"),
    ] + [
        row(bench, f"training time, estimated from timed steps, {threads} thread{'s' * (threads > 1)}", minutes,
            "min", target="< 30 min on 2 cores" if threads == 2 else None, met=minutes < 30 if threads == 2 else None)
        for threads, (_, minutes) in estimates.items()
    ]


if __name__ == "__main__":
    print_rows(run())
