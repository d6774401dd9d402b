"""Train the demo AST on SyntheticEvents: ``python -m audiovis.demo.train [--out DIR] [--tiny]``.

Reproducible from ``--seed``: the clips come from ``SyntheticEvents(seed=...)``, the initial weights from
``torch.manual_seed(seed)`` and the batch order from a seeded ``torch.Generator``. Features are computed
once and kept in memory; the loss is multi-label BCE, optimised with AdamW (linear warm-up, cosine decay).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from ..datasets import SyntheticEvents
from . import TRAIN_SEED, WEIGHTS_DIR
from .features import FeatureSet, compute_features


@dataclass
class TrainOptions:
    """Everything that determines a training run (the defaults rebuild the shipped weights)."""

    out: Path | None = WEIGHTS_DIR
    seed: int = TRAIN_SEED
    train_clips: int = 6000
    epochs: int = 100
    batch_size: int = 8
    lr: float = 3.5e-4
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05
    max_steps: int | None = 4000
    threads: int = 2
    duration: float = 4.0
    max_length: int = 400
    hidden_size: int = 192
    num_hidden_layers: int = 4
    num_attention_heads: int = 3
    intermediate_size: int = 768
    half_precision_file: bool = True
    progress: bool = True


@dataclass
class TrainResult:
    """The trained model (eval mode), the loss of every step, and the wall and CPU time of each stage (s)."""

    model: "torch.nn.Module"
    losses: list[float] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def demo_config(class_names: Sequence[str], *, fbank_mean: float, fbank_std: float, options: TrainOptions):
    """The demo model's ASTConfig: AST's front end and stride-10 patches at a smaller size."""
    from ..models.ast import ASTConfig

    return ASTConfig(
        hidden_size=options.hidden_size,
        num_hidden_layers=options.num_hidden_layers,
        num_attention_heads=options.num_attention_heads,
        intermediate_size=options.intermediate_size,
        patch_size=16,
        frequency_stride=10,
        time_stride=10,
        max_length=options.max_length,
        num_mel_bins=128,
        num_labels=len(class_names),
        labels=list(class_names),
        multi_label=True,
        fbank_mean=fbank_mean,
        fbank_std=fbank_std,
        layer_norm_eps=1e-6,
    )


def _schedule(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def train(options: TrainOptions | None = None, features: FeatureSet | None = None) -> TrainResult:
    """Train (and, when ``options.out`` is set, save) a demo AST; ``features`` skips the feature pass."""
    from tqdm.auto import tqdm

    from ..models.ast import ASTModel

    options = options or TrainOptions()
    torch.set_num_threads(options.threads)
    seconds: dict[str, float] = {}
    dataset = SyntheticEvents(options.train_clips, seed=options.seed, duration=options.duration)

    start, cpu = time.perf_counter(), time.process_time()
    if features is None:
        features = compute_features(
            dataset, num_mel_bins=128, max_length=options.max_length, progress=options.progress
        )
    mean, std = features.statistics()
    seconds["features"] = time.perf_counter() - start
    seconds["features_cpu"] = time.process_time() - cpu

    torch.manual_seed(options.seed)
    model = ASTModel(demo_config(dataset.class_names, fbank_mean=mean, fbank_std=std, options=options))
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    per_epoch = max(1, len(features) // options.batch_size)
    total = per_epoch * options.epochs
    if options.max_steps is not None:
        total = min(total, options.max_steps)
    warmup = max(1, int(options.warmup_fraction * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _schedule(s, total, warmup))
    order = torch.Generator().manual_seed(options.seed)

    start, cpu = time.perf_counter(), time.process_time()
    losses: list[float] = []
    model.train()
    bar = tqdm(total=total, disable=not options.progress, unit="step")
    smoothed = None
    epochs = min(options.epochs, math.ceil(total / per_epoch))  # max_steps may end the run early
    for epoch in range(epochs):
        bar.set_description(f"epoch {epoch + 1}/{epochs}")
        permutation = torch.randperm(len(features), generator=order)
        for b in range(per_epoch):
            if len(losses) >= total:
                break
            x, y = features.batch(permutation[b * options.batch_size : (b + 1) * options.batch_size], mean, std)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            smoothed = losses[-1] if smoothed is None else 0.95 * smoothed + 0.05 * losses[-1]
            bar.update(1)
            bar.set_postfix(loss=f"{smoothed:.4f}")
    bar.close()
    seconds["training"] = time.perf_counter() - start
    seconds["training_cpu"] = time.process_time() - cpu
    model.eval()
    model.head_trained = True

    result = TrainResult(model, losses, seconds)
    if options.out is not None:
        save(model, Path(options.out), half_precision=options.half_precision_file)
        write_log(result, options, Path(options.out) / "train_log.json")
    return result


def write_log(result: TrainResult, options: TrainOptions, path: Path) -> None:
    """The run's options, per-step losses and timings, next to the weights it produced."""
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items() if k != "out"}
    log = {
        "options": settings,
        "steps": len(result.losses),
        "seconds": {k: round(v, 1) for k, v in result.seconds.items()},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "losses": [round(v, 5) for v in result.losses],
    }
    path.write_text(json.dumps(log, indent=1) + "\n", encoding="utf-8")
    path.chmod(0o644)


def save(model, directory: Path, *, half_precision: bool = True) -> None:
    """``model.save_pretrained(directory)``; with ``half_precision`` the weights file stores float16."""
    from safetensors.torch import load_file, save_file

    model.save_pretrained(directory)
    if half_precision:
        path = directory / "model.safetensors"
        tensors = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
        save_file(tensors, str(path), metadata={"format": "pt"})
    for path in directory.iterdir():
        path.chmod(0o644)


def _parse(argv: Sequence[str] | None) -> TrainOptions:
    defaults = TrainOptions()
    p = argparse.ArgumentParser(prog="python -m audiovis.demo.train", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=defaults.out, help="output directory (default: the shipped weights)")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--clips", type=int, default=defaults.train_clips, help="training clips")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--max-steps", type=int, default=None,
                   help=f"stop after this many optimiser steps (default {defaults.max_steps}; --tiny: 30)")
    p.add_argument("--threads", type=int, default=defaults.threads, help="torch CPU threads")
    p.add_argument("--layers", type=int, default=defaults.num_hidden_layers)
    p.add_argument("--tiny", action="store_true", help="smoke run: 64 clips, a 2-layer model, 30 steps at lr 1e-3")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    options = TrainOptions(
        out=a.out, seed=a.seed, train_clips=a.clips, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
        max_steps=defaults.max_steps if a.max_steps is None else a.max_steps, threads=a.threads, num_hidden_layers=a.layers, progress=not a.no_progress,
    )
    if a.tiny:
        options.train_clips, options.batch_size, options.epochs = 64, 16, 8
        options.num_hidden_layers, options.hidden_size, options.intermediate_size = 2, 64, 128
        options.num_attention_heads, options.lr = 2, 1e-3
        options.max_steps = a.max_steps or 30
    return options


def main(argv: Sequence[str] | None = None) -> TrainResult:
    options = _parse(argv)
    if options.out is not None and Path(options.out).resolve() == WEIGHTS_DIR and options.train_clips < 1000:
        raise SystemExit("refusing to overwrite the shipped weights with a small run; pass --out DIR")
    result = train(options)
    first = sum(result.losses[:10]) / max(1, len(result.losses[:10]))
    last = sum(result.losses[-10:]) / max(1, len(result.losses[-10:]))
    print(
        f"{len(result.losses)} steps; loss {first:.4f} (first 10) -> {last:.4f} (last 10); "
        f"features {result.seconds['features']:.0f} s, training {result.seconds['training']:.0f} s"
        + (f"; saved to {options.out}" if options.out is not None else "")
    )
    return result


if __name__ == "__main__":
    main()
