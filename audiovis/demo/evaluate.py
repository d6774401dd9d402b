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
from ..metrics import average_precision
from . import EVAL_SEED


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


def _widen(box, spectrogram, frames: float, bins: float) -> tuple[float, float, float, float]:
    """``box`` (s, Hz) grown by ``frames`` on each side in time and ``bins`` on the mel axis."""
    t0, t1 = spectrogram.time_to_frame([box[0], box[1]])
    f0, f1 = spectrogram.hz_to_bin([box[2], box[3]])
    t0, t1 = spectrogram.frame_to_time([t0 - frames, t1 + frames])
    lowest, highest = spectrogram.frequency_edges[0], spectrogram.frequency_edges[-1]
    f0 = spectrogram.bin_to_hz(f0 - bins) if f0 - bins >= 0 else lowest - 1.0
    f1 = spectrogram.bin_to_hz(f1 + bins) if f1 + bins <= spectrogram.num_bins else highest + 1.0
    return float(t0), float(t1), float(f0), float(f1)


def _area_fraction(box, grid, spectrogram) -> float:
    """Share of the patch-covered spectrogram area (frames x mel bins) inside ``box``."""
    last_bin = (grid.num_freq - 1) * grid.stride[0] + grid.patch_size[0]
    last_frame = (grid.num_time - 1) * grid.stride[1] + grid.patch_size[1]
    t0, t1 = np.clip(spectrogram.time_to_frame([box[0], box[1]]), 0, last_frame)
    f0, f1 = np.clip(spectrogram.hz_to_bin([box[2], box[3]]), 0, last_bin)
    return float((t1 - t0) * (f1 - f0) / (last_frame * last_bin))


# Tolerance of the lenient pointing game (as Zhang et al. 2016 allow a few pixels): half a patch stride.
TOLERANCE_FRAMES = 5.0
TOLERANCE_BINS = 5.0


@dataclass
class Pointing:
    """Pointing-game rates (shares of events) of the two maps and of a random patch."""

    saliency: float
    rollout: float
    random: float

    @property
    def saliency_margin(self) -> float:
        return self.saliency - self.random

    @property
    def rollout_margin(self) -> float:
        return self.rollout - self.random


@dataclass
class QualityReport:
    """Held-out quality of a model on SyntheticEvents clips (rates are shares in [0, 1]).

    ``strict``: the argmax patch centre is inside the box; ``tolerant``: within half a patch stride of it.
    ``rollout_any``/``random_any``: per clip, the rollout argmax (or a random patch) lies in any event box.
    ``reachable``: share of events whose box holds at least one patch centre (the others cannot be hit
    under the strict rule).
    """

    seed: int
    num_clips: int
    num_events: int
    mean_ap: float
    class_ap: dict[str, float]
    strict: Pointing
    tolerant: Pointing
    rollout_any: float
    random_any: float
    reachable: float
    box_area: float
    class_saliency: dict[str, float]
    seconds: float

    def to_markdown(self) -> str:
        s, t = self.strict, self.tolerant
        lines = [
            f"Held-out split: `SyntheticEvents({self.num_clips}, seed={self.seed})`, {self.num_events} events.",
            "",
            f"**Clip mAP: {self.mean_ap:.4f}**",
            "",
            "| pointing game (share of events) | strict: centre in box | tolerant: within half a stride |",
            "|---|---|---|",
            f"| `saliency(event class)` argmax | {s.saliency:.3f} | {t.saliency:.3f} |",
            f"| `rollout()` argmax | {s.rollout:.3f} | {t.rollout:.3f} |",
            f"| random patch (baseline) | {s.random:.3f} | {t.random:.3f} |",
            "",
            f"`rollout()` argmax inside some event of its clip: {self.rollout_any:.3f} of clips "
            f"(random patch: {self.random_any:.3f}). Mean box area: {self.box_area:.3f} of the patch-covered "
            f"grid; {self.reachable:.3f} of the boxes hold a patch centre.",
            "",
            "| class | AP | saliency pointing game (strict) |",
            "|---|---|---|",
        ]
        for name, ap in self.class_ap.items():
            lines.append(f"| {name} | {ap:.4f} | {self.class_saliency[name]:.3f} |")
        return "\n".join(lines)


def evaluate(model=None, *, num_clips: int = 300, seed: int = EVAL_SEED, progress: bool = False) -> QualityReport:
    """Score ``model`` (default: the shipped demo model) on ``SyntheticEvents(num_clips, seed=seed)``."""
    from tqdm.auto import tqdm

    from . import load_demo_model

    model = load_demo_model() if model is None else model
    start = time.perf_counter()
    labels = list(model.labels)
    dataset = SyntheticEvents(num_clips, seed=seed, duration=model.window_seconds, classes=labels)
    probabilities, targets, classes, areas = [], [], [], []
    # Per event, for (strict, tolerant): [saliency hit, rollout hit, random-patch hit rate].
    rows: dict[str, list[list[float]]] = {"strict": [], "tolerant": []}
    rollout_any, random_any = [], []
    centres = None
    for i in tqdm(range(num_clips), desc="evaluate", disable=not progress, leave=False):
        clip = dataset[i]
        result = model.analyze(clip.audio)
        probabilities.append(result.probabilities)
        targets.append(clip.labels.numpy())
        spec, grid = result.spectrogram, result.grid
        if centres is None:
            centres = patch_centres(grid, spec)
        times, freqs = centres
        rolled = int(np.argmax(result.rollout(progress=False)))
        in_any = np.zeros(grid.num_patches, dtype=bool)
        for event in clip.events:
            pointed = int(np.argmax(result.saliency(event.class_index, progress=False)))
            for kind, box in (("strict", event.box), ("tolerant", _widen(event.box, spec, TOLERANCE_FRAMES, TOLERANCE_BINS))):
                inside = _inside(box, times, freqs)
                rows[kind].append([float(inside[pointed]), float(inside[rolled]), float(inside.mean())])
                if kind == "strict":
                    in_any |= inside
            areas.append(_area_fraction(event.box, grid, spec))
            classes.append(event.label)
        rollout_any.append(float(in_any[rolled]))
        random_any.append(float(in_any.mean()))
    scores, truth = np.stack(probabilities), np.stack(targets)
    class_ap = {name: average_precision(truth[:, k], scores[:, k]) for k, name in enumerate(labels)}
    strict, tolerant = np.array(rows["strict"]), np.array(rows["tolerant"])
    classes_arr = np.array(classes)
    return QualityReport(
        seed=seed,
        num_clips=num_clips,
        num_events=len(classes),
        mean_ap=float(np.nanmean(list(class_ap.values()))),
        class_ap=class_ap,
        strict=Pointing(*(float(v) for v in strict.mean(axis=0))),
        tolerant=Pointing(*(float(v) for v in tolerant.mean(axis=0))),
        rollout_any=float(np.mean(rollout_any)),
        random_any=float(np.mean(random_any)),
        reachable=float(np.mean(strict[:, 2] > 0)),
        box_area=float(np.mean(areas)),
        class_saliency={
            name: float(strict[classes_arr == name, 0].mean()) if np.any(classes_arr == name) else float("nan")
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
