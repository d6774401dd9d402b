"""Speed against fidelity: a model with token pruning (and coarser strides) measured against itself in full.

For each setting, ``compute_tradeoff`` times the forward pass over a dataset (front end excluded: every
setting sees the same spectrograms), and compares the predictions with the full model's: top-1 agreement,
and mAP (multi-hot labels) or accuracy (class ids) when the data carries labels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Literal, Sequence

import numpy as np
import torch

from .models.pruning import PrunedModel, check_keep_ratio, convert_stride

if TYPE_CHECKING:
    from bokeh.plotting import figure as Figure

    from .models.base import SpectrogramModelMixin


@dataclass
class Tradeoff:
    """One row per setting: ``method``, ``keep_ratio``, ``tokens``, ``time_ms`` (per clip), ``speedup``,
    ``agreement`` (top-1 equal to the full model's) and, with labels, ``score`` (``score_name``)."""

    rows: list[dict] = field(default_factory=list)
    score_name: str | None = None

    def row(self, method: str, keep_ratio: float | None = None) -> dict:
        """The row of ``method`` (``"full"``, ``"energy"``, ``"attention"``, ``"stride 16"``...) at ``keep_ratio``."""
        for r in self.rows:
            if r["method"] == method and (keep_ratio is None or abs(r["keep_ratio"] - keep_ratio) < 1e-9):
                return r
        raise KeyError(f"no row for method {method!r} at keep_ratio {keep_ratio}")

    def to_markdown(self) -> str:
        score = f" | {self.score_name}" if self.score_name else ""
        lines = [
            f"| method | keep ratio | tokens | ms / clip | speed-up | top-1 agreement{score} |",
            "|---|---:|---:|---:|---:|---:|" + ("---:|" if self.score_name else ""),
        ]
        for r in self.rows:
            extra = f" | {r['score']:.3f}" if self.score_name else ""
            lines.append(
                f"| {r['method']} | {r['keep_ratio']:.2f} | {r['tokens']} | {r['time_ms']:.1f} | "
                f"{r['speedup']:.2f}x | {r['agreement']:.3f}{extra} |"
            )
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    @property
    def figure(self) -> "Figure":
        return self.plot()

    def plot(self, *, width: int = 560, height: int = 320) -> "Figure":
        """Bokeh: top-1 agreement (and the labelled score) against speed-up, one line per method."""
        from bokeh.models import ColumnDataSource
        from bokeh.palettes import Category10_10
        from bokeh.plotting import figure

        fig = figure(width=width, height=height, title="Speed-up against fidelity to the full model",
                     x_axis_label="speed-up (x, forward pass)", y_axis_label="top-1 agreement / score",
                     tools="hover,save,reset",
                     tooltips=[("method", "@method"), ("keep ratio", "@keep_ratio{0.00}"), ("tokens", "@tokens"),
                               ("speed-up", "@speedup{0.00}x"), ("agreement", "@agreement{0.000}")])
        methods = list(dict.fromkeys(r["method"] for r in self.rows if r["method"] != "full"))
        full = [r for r in self.rows if r["method"] == "full"]
        for i, method in enumerate(methods):
            rows = sorted(full + [r for r in self.rows if r["method"] == method], key=lambda r: r["speedup"])
            data = {k: [r[k] for r in rows] for k in ("method", "keep_ratio", "tokens", "speedup", "agreement")}
            src = ColumnDataSource(data)
            color = Category10_10[i % 10]
            fig.line("speedup", "agreement", source=src, color=color, line_width=2, legend_label=f"{method}: agreement")
            fig.scatter("speedup", "agreement", source=src, color=color, size=7)
            if self.score_name:
                fig.line([r["speedup"] for r in rows], [r["score"] for r in rows], color=color, line_dash="dashed",
                         legend_label=f"{method}: {self.score_name}")
        fig.legend.location = "bottom_left"
        return fig


def _labels_of(item) -> np.ndarray | None:
    value = getattr(item, "labels", None)
    if value is None:
        return None
    return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def check_labels(labels, class_names: Sequence[str], total: int, *, source: str = "") -> np.ndarray:
    """``labels`` as class ids ``[clips]`` or multi-hot rows ``[clips, classes]`` of the model's classes.

    Class names are turned into ids. Ids outside the model's classes, unknown names, or multi-hot rows of
    another width raise ValueError naming them and the class count (they would score 0 silently).
    """
    what = f"{source} labels".strip()
    arr = np.asarray(labels)
    n = len(class_names)
    if arr.ndim == 0 or arr.shape[0] != total:
        raise ValueError(f"{arr.shape[0] if arr.ndim else 'a scalar'} {what} for {total} clips")
    if arr.ndim == 2:
        if arr.shape[1] != n:
            raise ValueError(f"{what} are multi-hot rows of {arr.shape[1]} classes, but the model has {n} classes")
        return arr
    if arr.ndim != 1:
        raise ValueError(f"{what} must be class ids [clips] or multi-hot rows [clips, {n}], got shape {arr.shape}")
    if arr.dtype.kind in "US":
        index = {name: i for i, name in enumerate(class_names)}
        unknown = sorted({str(v) for v in arr.tolist() if v not in index})
        if unknown:
            raise ValueError(f"{what} name classes the model does not have: {unknown[:10]} (the model has {n} classes)")
        return np.array([index[v] for v in arr.tolist()], dtype=np.int64)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{what} must be integer class ids or class names, got {arr.dtype} values")
    bad = np.unique(arr[(arr < 0) | (arr >= n)])
    if bad.size:
        shown = bad[:10].tolist()
        raise ValueError(
            f"{what} {shown}{' ...' if bad.size > 10 else ''} are not classes of the model, which has {n} classes "
            f"(ids 0..{n - 1}); map the dataset's classes to the model's, or fine-tune its head first"
        )
    return arr


def _score(logits: np.ndarray, labels: np.ndarray) -> tuple[str, float]:
    from .probe import mean_average_precision

    if labels.ndim == 2:
        return "mAP", mean_average_precision(labels, logits)
    return "accuracy", float(np.mean(logits.argmax(-1) == labels))


def _timed_pass(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int) -> tuple[np.ndarray, float]:
    """Logits of every clip and the summed forward time (s) of its batches."""
    logits, total = [], 0.0
    for start in range(0, x.shape[0], batch_size):
        batch = x[start:start + batch_size]
        t0 = time.perf_counter()
        out = forward(batch)
        total += time.perf_counter() - t0
        logits.append(out.float().cpu())
    return torch.cat(logits).numpy(), total


def _measure(forwards: list[Callable], x: torch.Tensor, batch_size: int, repeats: int, progress: bool) -> list[tuple[np.ndarray, float]]:
    """Each setting's logits and best pass time, the settings taking turns in every round (fair under drifting load)."""
    from tqdm.auto import tqdm

    results: list[tuple[np.ndarray, float]] = []
    with torch.inference_mode(), tqdm(total=repeats * len(forwards), desc="timing", disable=not progress) as bar:
        for forward in forwards:
            forward(x[:batch_size])  # warm-up
        for round_ in range(repeats):
            for i, forward in enumerate(forwards):
                logits, seconds = _timed_pass(forward, x, batch_size)
                if round_ == 0:
                    results.append((logits, seconds))
                else:
                    results[i] = (results[i][0], min(results[i][1], seconds))
                bar.update(1)
    return results


def compute_tradeoff(
    model: "SpectrogramModelMixin",
    dataset,
    keep_ratios: Sequence[float] = (1.0, 0.75, 0.5, 0.25),
    *,
    keep_by: Literal["energy", "attention"] | Sequence[str] = "energy",
    prune_layer: int | None = None,
    fuse_dropped: bool = True,
    strides: Sequence[int] = (),
    labels: np.ndarray | None = None,
    batch_size: int = 8,
    repeats: int = 1,
    sample_rate: int | None = None,
    progress: bool = True,
) -> Tradeoff:
    """Time and compare ``model`` with token pruning at each of ``keep_ratios`` (and at each of ``strides``).

    ``dataset`` is anything :func:`audiovis.extract_embeddings` reads; labels come from its items'
    ``.labels`` unless given. ``keep_by`` may list several scores; ``fuse_dropped`` as in
    :func:`audiovis.models.pruning.forward_pruned`. Speed-ups are full-model time over the
    setting's time, each the best of ``repeats`` timed passes over the data, the settings taking turns. Stride rows use
    :func:`audiovis.models.pruning.convert_stride` (no fine-tuning).
    """
    from tqdm.auto import tqdm

    from .embeddings import iter_sources, read_source
    from .models.base import inference

    ratios = [check_keep_ratio(r) for r in keep_ratios]
    methods = [keep_by] if isinstance(keep_by, str) else list(keep_by)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    for method in methods:
        PrunedModel(model, 1.0, method, prune_layer)  # checks keep_by and prune_layer up front

    total, items = iter_sources(dataset, "compute_tradeoff")
    if total == 0:
        raise ValueError("compute_tradeoff needs at least one clip")
    if labels is not None:  # before any clip is read: a mismatch would otherwise score 0.000 at the end
        labels = check_labels(labels, model.labels, total)
    specs, found = [], []
    for position, item in enumerate(tqdm(items, total=total, desc="spectrograms", disable=not progress)):
        specs.append(model.spectrogram(read_source(item, sample_rate, position)[1], sample_rate=sample_rate).values)
        found.append(_labels_of(item))
    x = torch.stack(specs).to(model.device)
    if labels is None and all(v is not None for v in found):
        labels = check_labels(np.stack(found), model.labels, total, source="the dataset's")

    settings: list[tuple[str, float, int, Callable]] = [("full", 1.0, model.grid.num_patches, model)]
    for method in methods:
        for ratio in ratios:
            if ratio < 1.0:
                pruned = PrunedModel(model, ratio, method, prune_layer, fuse_dropped)
                settings.append((method, ratio, pruned.num_tokens, pruned))
    for stride in strides:
        coarse = convert_stride(model, stride)
        n = coarse.grid.num_patches
        settings.append((f"stride {stride}", n / model.grid.num_patches, n, coarse))

    with inference(model):
        measured = _measure([s[3] for s in settings], x, batch_size, repeats, progress)
    results = [(name, ratio, tokens, logits, seconds) for (name, ratio, tokens, _), (logits, seconds) in zip(settings, measured)]

    full_logits, full_time = results[0][3], results[0][4]
    top_full = full_logits.argmax(-1)
    rows, score_name = [], None
    for name, ratio, tokens, logits, seconds in results:
        row = dict(method=name, keep_ratio=ratio, tokens=tokens, time_ms=1000 * seconds / total,
                   speedup=full_time / seconds, agreement=float(np.mean(logits.argmax(-1) == top_full)))
        if labels is not None:
            score_name, row["score"] = _score(logits, labels)
        rows.append(row)
    return Tradeoff(rows, score_name)

