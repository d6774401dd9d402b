"""Quality of the demo model on held-out clips: ``python -m audiovis.demo.evaluate [--clips N] [--seed S]``.

Classification: clip-level mean average precision (mAP) and per-class AP. Localisation, by the pointing
game: an event counts as found when the centre of the map's highest patch lies inside the event's true
time-frequency box; a map that picks a patch at random finds it with probability equal to the share of
patch centres inside the box, the baseline reported next to it.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..datasets import SyntheticEvents
from . import EVAL_SEED


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Area under the precision-recall curve as the mean precision at each positive (ties grouped)."""
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets) > 0.5
    positives = int(targets.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    scores, targets = scores[order], targets[order]
    hits = np.cumsum(targets)
    # Only the last position of each run of tied scores is a threshold.
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]
    precision = hits[last_of_tie] / (np.flatnonzero(last_of_tie) + 1)
    recall_gain = np.diff(np.r_[0, hits[last_of_tie]]) / positives
    return float(np.sum(precision * recall_gain))


def patch_centres(grid, spectrogram) -> tuple[np.ndarray, np.ndarray]:
    """Centre of every patch (token order) in seconds and Hz; the Hz centre is the middle of the patch on the mel axis."""
    times, freqs = np.empty(grid.num_patches), np.empty(grid.num_patches)
    for index in range(grid.num_patches):
        box = grid.bounds_hz_s(index, spectrogram)
        times[index] = 0.5 * (box.time_start + box.time_end)
        middle_bin = 0.5 * float(np.sum(spectrogram.hz_to_bin([box.freq_start, box.freq_end])))
        freqs[index] = float(spectrogram.bin_to_hz(middle_bin))
    return times, freqs


def _inside(box, times: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    return (times >= box[0]) & (times <= box[1]) & (freqs >= box[2]) & (freqs <= box[3])


def _area_fraction(box, grid, spectrogram) -> float:
    """Share of the patch-covered spectrogram area (frames x mel bins) inside ``box``."""
    last_bin = (grid.n_freq - 1) * grid.stride[0] + grid.patch_size[0]
    last_frame = (grid.n_time - 1) * grid.stride[1] + grid.patch_size[1]
    t0, t1 = np.clip(spectrogram.time_to_frame([box[0], box[1]]), 0, last_frame)
    f0, f1 = np.clip(spectrogram.hz_to_bin([box[2], box[3]]), 0, last_bin)
    return float((t1 - t0) * (f1 - f0) / (last_frame * last_bin))


@dataclass
class QualityReport:
    """Held-out quality of a model on SyntheticEvents clips (rates are shares in [0, 1])."""

    seed: int
    num_clips: int
    num_events: int
    mean_ap: float
    class_ap: dict[str, float]
    saliency_hits: float
    rollout_hits: float
    rollout_clip_hits: float
    random_hits: float
    random_clip_hits: float
    box_area: float
    class_saliency_hits: dict[str, float]
    seconds: float

    @property
    def saliency_margin(self) -> float:
        return self.saliency_hits - self.random_hits

    def to_markdown(self) -> str:
        lines = [
            f"Held-out split: `SyntheticEvents({self.num_clips}, seed={self.seed})`, {self.num_events} events.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| clip mAP | {self.mean_ap:.4f} |",
            f"| pointing game, `saliency(class)` (per event) | {self.saliency_hits:.3f} |",
            f"| pointing game, `rollout()` (per event) | {self.rollout_hits:.3f} |",
            f"| pointing game, `rollout()` inside any event of the clip (per clip) | {self.rollout_clip_hits:.3f} |",
            f"| random patch, per event (baseline) | {self.random_hits:.3f} |",
            f"| random patch, inside any event (per-clip baseline) | {self.random_clip_hits:.3f} |",
            f"| mean box area fraction of the covered grid | {self.box_area:.3f} |",
            "",
            "| class | AP | saliency pointing game |",
            "|---|---|---|",
        ]
        for name, ap in self.class_ap.items():
            lines.append(f"| {name} | {ap:.4f} | {self.class_saliency_hits[name]:.3f} |")
        return "\n".join(lines)


def evaluate(model=None, *, num_clips: int = 300, seed: int = EVAL_SEED, progress: bool = False) -> QualityReport:
    """Score ``model`` (default: the shipped demo model) on ``SyntheticEvents(num_clips, seed=seed)``."""
    from tqdm.auto import tqdm

    from . import load_demo_model

    model = load_demo_model() if model is None else model
    start = time.perf_counter()
    labels = list(model.labels)
    dataset = SyntheticEvents(num_clips, seed=seed, duration=model.window_seconds, classes=labels)
    probabilities, targets = [], []
    saliency_hit, rollout_hit, random_hit, areas, event_class = [], [], [], [], []
    rollout_clip_hit, random_clip_hit = [], []
    centres = None
    for i in tqdm(range(num_clips), desc="evaluate", disable=not progress, leave=False):
        clip = dataset[i]
        result = model.analyze(clip.audio)
        probabilities.append(result.probabilities)
        targets.append(clip.labels.numpy())
        if centres is None:
            centres = patch_centres(result.grid, result.spectrogram)
        times, freqs = centres
        rolled = int(np.argmax(result.rollout()))
        covered = np.zeros(len(times), dtype=bool)
        for event in clip.events:
            box = event.box
            inside = _inside(box, times, freqs)
            covered |= inside
            saliency_hit.append(bool(inside[int(np.argmax(result.saliency(event.class_index)))]))
            rollout_hit.append(bool(inside[rolled]))
            random_hit.append(float(inside.mean()))
            areas.append(_area_fraction(box, result.grid, result.spectrogram))
            event_class.append(event.label)
        rollout_clip_hit.append(bool(covered[rolled]))
        random_clip_hit.append(float(covered.mean()))
    scores, truth = np.stack(probabilities), np.stack(targets)
    class_ap = {name: average_precision(scores[:, k], truth[:, k]) for k, name in enumerate(labels)}
    event_class_arr, saliency_arr = np.array(event_class), np.array(saliency_hit)
    return QualityReport(
        seed=seed,
        num_clips=num_clips,
        num_events=len(saliency_hit),
        mean_ap=float(np.nanmean(list(class_ap.values()))),
        class_ap=class_ap,
        saliency_hits=float(np.mean(saliency_hit)),
        rollout_hits=float(np.mean(rollout_hit)),
        rollout_clip_hits=float(np.mean(rollout_clip_hit)),
        random_hits=float(np.mean(random_hit)),
        random_clip_hits=float(np.mean(random_clip_hit)),
        box_area=float(np.mean(areas)),
        class_saliency_hits={
            name: float(saliency_arr[event_class_arr == name].mean()) if np.any(event_class_arr == name) else float("nan")
            for name in labels
        },
        seconds=time.perf_counter() - start,
    )


def main(argv: Sequence[str] | None = None) -> QualityReport:
    p = argparse.ArgumentParser(prog="python -m audiovis.demo.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=300)
    p.add_argument("--seed", type=int, default=EVAL_SEED)
    p.add_argument("--weights", type=Path, default=None, help="a trained model directory (default: the shipped one)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    model = None
    if a.weights is not None:
        from ..models.ast import ASTModel

        model = ASTModel.from_pretrained(a.weights)
    report = evaluate(model, num_clips=a.clips, seed=a.seed, progress=True)
    print(report.to_markdown())
    print(f"\n({report.seconds:.0f} s)")
    return report


if __name__ == "__main__":
    main()
