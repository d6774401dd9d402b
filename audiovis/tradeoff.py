"""Speed against fidelity: ways of reducing compute measured through the user's own call, against the full model.

``compute_tradeoff(model, data, methods=[...])`` runs every setting on the same clips the way a user runs
it: the front end (``model.spectrogram``) and then ``model.analyze`` on that spectrogram, the same call
``model.analyze(audio, ...)`` makes, timed apart (front end, model, total per clip). Settings (strings,
parts joined by ``+``):

- ``"full"``: the model as it is (always the first row, the reference);
- ``"prune 0.5"`` / ``"prune energy 0.5"`` / ``"prune attention 0.5"``: token pruning (``keep_ratio``);
- ``"merge 0.5"``: token merging (``merge_ratio``);
- ``"stride 16"``: :func:`~audiovis.models.pruning.convert_stride` (no fine-tuning);
- ``"int8"``, ``"bf16"``: :func:`~audiovis.quantize`;
- combinations, e.g. ``"int8 + prune 0.5"``.

Each row has the time per clip (median over ``repeats`` rounds; in every round each clip runs under every
setting in turn, the first setting rotating from clip to clip, fair under drifting load), the speed-up of
the total over the full model's, analytic multiply-accumulates
(:func:`audiovis.models.reduction.analytic_macs`), top-1 agreement with the full model and, when the data
carries labels, mAP (multi-hot) or accuracy (class ids).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from .checks import check_int, is_number
from .errors import ConfigError

if TYPE_CHECKING:
    from bokeh.models import LayoutDOM

    from .models.base import SpectrogramModelMixin

#: Published reference points drawn beside our curve: (label, speed-up or MAC share, score change in points).
ANCHORS = {
    "tome": dict(label="ToMe, ViT-B (Bolya et al. 2023): 2x throughput, -0.4 points", speedup=2.0, delta=-0.4),
    "topk": dict(label="TopK audio pruning (arXiv 2504.01690): -30-40 % MACs, < 1 point lost",
                 macs=(0.6, 0.7), delta=-1.0),
}

_PART = re.compile(r"^(?:(full|fp32|int8|bf16)|prune(?:\s+(energy|attention))?\s+([0-9.]+)|merge\s+([0-9.]+)|stride\s+(\d+))$")


@dataclass(frozen=True)
class Setting:
    """One row's configuration: ``name``, ``precision``, ``stride`` and ``analyze`` keywords."""

    name: str
    precision: str = "fp32"
    stride: int | None = None
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def analyze_options(self) -> dict[str, Any]:
        return dict(self.options)


def parse_setting(text: str) -> Setting:
    """A :class:`Setting` from ``"int8 + prune attention 0.5"``-style text (ValueError naming what is wrong)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"a trade-off method is a string such as 'prune 0.5', 'merge 0.5', 'stride 16', 'int8', got {text!r}")
    precision, stride, options = "fp32", None, {}
    given: dict[str, str] = {}  # kind -> the part that gave it
    for part in (p.strip().lower() for p in text.split("+")):
        match = _PART.match(re.sub(r"\s+", " ", part))
        if not match:
            raise ValueError(f"unknown trade-off method {part!r} in {text!r}; use 'full', 'prune [energy|attention] R', "
                             "'merge R', 'stride S', 'int8', 'bf16', joined by '+'")
        word, keep_by, keep, merge, coarse = match.groups()
        kind = ("full" if word == "full" else "precision") if word else "pruning" if keep else "merging" if merge else "stride"
        if kind in given:
            raise ValueError(f"{text!r} gives the {kind} twice ({given[kind]!r} and {part!r}); a setting takes one of each")
        given[kind] = part
        if word in ("int8", "bf16", "fp32"):
            precision = word
        elif keep is not None:
            options.update(keep_ratio=_ratio(keep, part, text), keep_by=keep_by or "energy")
        elif merge is not None:
            options["merge_ratio"] = _ratio(merge, part, text)
        elif coarse is not None:
            stride = int(coarse)
    return Setting(" + ".join(p.strip() for p in text.lower().split("+")), precision, stride, tuple(sorted(options.items())))


def _ratio(digits: str, part: str, text: str) -> float:
    try:
        return float(digits)
    except ValueError:
        raise ValueError(f"{digits!r} in {part!r} of {text!r} is not a number") from None


@dataclass(repr=False)
class Tradeoff:
    """One row per setting: ``method``, ``keep_ratio`` (share of patch tokens left by the last block),
    ``tokens``, ``frontend_ms``, ``model_ms``, ``time_ms`` (per clip: front end + model), ``speedup``
    (total), ``model_speedup``, ``macs`` (G), ``macs_ratio``, ``agreement`` and, with labels, ``score``."""

    rows: list[dict] = field(default_factory=list)
    score_name: str | None = None

    def row(self, method: str, keep_ratio: float | None = None) -> dict:
        """The row of ``method`` (``"full"``, ``"prune energy 0.5"``, ``"stride 16"``...; or a ranking name
        ``"energy"``/``"attention"`` with ``keep_ratio``)."""
        for r in self.rows:
            if r["method"] == method:
                return r
        if keep_ratio is not None:
            return self.row(f"prune {method} {keep_ratio:g}")
        raise KeyError(f"no row for method {method!r}; rows: {[r['method'] for r in self.rows]}")

    def to_markdown(self) -> str:
        score = f" | {self.score_name}" if self.score_name else ""
        lines = [
            f"| method | tokens left | front end ms | model ms | ms / clip | speed-up | MACs (G) | top-1 agreement{score} |",
            "|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if self.score_name else ""),
        ]
        for r in self.rows:
            extra = f" | {r['score']:.3f}" if self.score_name else ""
            lines.append(
                f"| {r['method']} | {r['tokens']} | {r['frontend_ms']:.1f} | {r['model_ms']:.1f} | {r['time_ms']:.1f} | "
                f"{r['speedup']:.2f}x | {r['macs']:.2f} | {r['agreement']:.3f}{extra} |"
            )
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:  # the table, not a dict per row, where no notebook renders the markdown
        n = len(self.rows)
        return f"Tradeoff ({n} setting{'' if n == 1 else 's'})\n{self.to_markdown()}"

    @property
    def figure(self) -> "LayoutDOM":
        return self.plot()

    def plot(self, *, width: int = 460, height: int = 320) -> "LayoutDOM":
        """Bokeh, two panels: the change in score (or top-1 agreement) against the speed-up, with ToMe's published
        point; and against the share of MACs, with the TopK audio-pruning band."""
        from bokeh.layouts import row as bokeh_row
        from bokeh.models import ColumnDataSource, Label
        from bokeh.palettes import Category10_10
        from bokeh.plotting import figure

        full = self.rows[0]
        if self.score_name:
            y = [100 * (r["score"] - full["score"]) for r in self.rows]
            y_label = f"{self.score_name} change vs full model (points)"
        else:
            y = [100 * (r["agreement"] - 1.0) for r in self.rows]
            y_label = "top-1 agreement - 100 % (points)"
        data = dict(method=[r["method"] for r in self.rows], speedup=[r["speedup"] for r in self.rows],
                    macs_ratio=[r["macs_ratio"] for r in self.rows], delta=y,
                    agreement=[r["agreement"] for r in self.rows],
                    color=[Category10_10[i % 10] for i in range(len(self.rows))])
        source = ColumnDataSource(data)
        tooltips = [("method", "@method"), ("speed-up", "@speedup{0.00}x"), ("MACs", "@macs_ratio{0%}"),
                    ("agreement", "@agreement{0.000}"), ("change", "@delta{0.00} points")]
        speed = figure(width=width, height=height, title="Through the user path: speed-up", x_axis_label="speed-up (x, per clip)",
                       y_axis_label=y_label, tools="hover,save,reset", tooltips=tooltips)
        speed.scatter("speedup", "delta", source=source, color="color", size=9, legend_field="method")
        tome = ANCHORS["tome"]
        speed.scatter([tome["speedup"]], [tome["delta"]], marker="star", size=16, color="black")
        speed.add_layout(Label(x=tome["speedup"], y=tome["delta"], text="ToMe ViT-B", x_offset=6, y_offset=-14, text_font_size="9pt"))
        macs = figure(width=width, height=height, title="Analytic multiply-accumulates", x_axis_label="MACs (share of full model)",
                      y_axis_label=y_label, tools="hover,save,reset", tooltips=tooltips, x_range=(1.05, 0.0))
        macs.scatter("macs_ratio", "delta", source=source, color="color", size=9)
        low, high = ANCHORS["topk"]["macs"]
        macs.quad(left=[high], right=[low], bottom=[ANCHORS["topk"]["delta"]], top=[0.0], fill_alpha=0.15, color="black",
                  legend_label="TopK audio (AST): -30-40 % MACs, < 1 point")
        for fig in (speed, macs):
            fig.legend.location = "bottom_left"
            fig.legend.label_text_font_size = "8pt"
        return bokeh_row(speed, macs)


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
    from .metrics import mean_average_precision

    if labels.ndim == 2:
        return "mAP", mean_average_precision(labels, logits)
    return "accuracy", float(np.mean(logits.argmax(-1) == labels))


def _settings(methods: Sequence[Any], keep_by: str | Sequence[str], strides: Sequence[int]) -> list[Setting]:
    """The settings asked for; numbers are keep ratios (ranked by each of ``keep_by``), as before methods were named."""
    rankings = [keep_by] if isinstance(keep_by, str) else list(keep_by)
    from .models.pruning import KEEP_BY, check_keep_ratio

    for ranking in rankings:
        if ranking not in KEEP_BY:
            raise ValueError(f"keep_by must be one of {list(KEEP_BY)}, got {ranking!r}")
    texts: list[str] = []
    for m in methods:
        if not isinstance(m, str) and not is_number(m):
            parse_setting(m)  # names what a method is
    numbers = [m for m in methods if not isinstance(m, str)]
    for ratio in numbers:
        check_keep_ratio(ratio)
    for ranking in rankings:
        texts += [f"prune {ranking} {float(r):g}" for r in numbers if float(r) < 1.0]
    texts += [m for m in methods if isinstance(m, str)]
    texts += [f"stride {int(s)}" for s in strides]
    settings = [parse_setting(t) for t in texts]
    settings = [s for s in settings if s.name not in ("full", "fp32")]
    return [Setting("full")] + list(dict.fromkeys(settings))


def _model_for(model: "SpectrogramModelMixin", setting: Setting, cache: dict) -> "SpectrogramModelMixin":
    key = (setting.stride, setting.precision)
    if key not in cache:
        from .models.precision import quantize
        from .models.pruning import convert_stride

        m = model if setting.stride is None else convert_stride(model, setting.stride)
        cache[key] = m if setting.precision == "fp32" else quantize(m, setting.precision)
    return cache[key]


def compute_tradeoff(
    model: "SpectrogramModelMixin",
    data,
    methods: Sequence[Any] = ("prune 0.75", "prune 0.5", "prune 0.25"),
    *,
    keep_by: str | Sequence[str] = "energy",
    strides: Sequence[int] = (),
    labels: np.ndarray | None = None,
    repeats: int = 1,
    sample_rate: int | None = None,
    progress: bool = True,
    batch_size: int | None = None,
) -> Tradeoff:
    """Time and compare ``model`` under each of ``methods`` on the clips of ``data``, through the user path.

    ``data`` is anything :func:`audiovis.extract_embeddings` reads (audio, paths, Spectrograms, a dataset
    of items with ``.audio``/``.labels``); labels come from the items unless given. ``methods`` are setting
    strings (module docstring) or, as before, keep ratios (pruned by each of ``keep_by``); ``strides`` adds
    stride conversions. Every setting runs the front end and ``analyze`` on every model window of every clip
    (windows cut as ``analyze`` cuts them); a clip of several windows scores as the store combines them
    (:func:`~audiovis.analysis.clip_scores`), and a Spectrogram clip has no front end to time. ``repeats``
    rounds, in each of which every clip runs under every setting in turn (so a change in the machine's speed
    falls on all settings alike); each setting's time is the median of its rounds' totals. ``batch_size`` is
    accepted for compatibility: ``analyze`` runs one clip at a time.

    Args:
        model: the full model, the reference row.
        data: the clips (anything :func:`audiovis.extract_embeddings` reads).
        methods: setting strings (``"prune 0.5"``, ``"merge 0.5"``, ``"int8 + prune 0.5"``, ...) or keep ratios.
        keep_by: the pruning ranking(s) a bare keep ratio runs with (``"energy"``, ``"attention"``).
        strides: patch strides to convert the model to, one row each.
        labels: one label per clip (None: the items' ``.labels`` when they have them).
        repeats: timing rounds; each setting's time is the median.
        sample_rate: the rate of clips given as arrays.
        progress: show a progress bar.
        batch_size: accepted and checked, not used (one clip at a time).

    Returns:
        A :class:`Tradeoff`: one row per setting, the full model first.
    """
    from tqdm.auto import tqdm

    from .analysis import clip_scores
    from .audio import load_audio
    from .models.base import check_model
    from .models.reduction import analytic_macs, block_tokens, resolve_options
    from .spectrogram import Spectrogram, load_source
    from .store.sources import check_files, item_value, plan, sound_value
    from .windows import model_window_starts, window_input

    check_model(model, "compute_tradeoff")
    repeats = check_int(repeats, "repeats", minimum=1)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", minimum=1, error=ConfigError)
    if isinstance(methods, str):
        methods = [methods]
    if not isinstance(methods, Iterable) or isinstance(methods, (bytes, dict)):
        raise TypeError(f"methods must be a list of settings such as ['prune 0.5', 'merge 0.5', 'int8'] or keep "
                        f"ratios, got {type(methods).__name__}")
    settings = _settings(list(methods), keep_by, strides)
    models: dict = {}
    for setting in settings:  # bad methods fail before any clip is read
        m = _model_for(model, setting, models)
        resolve_options(m, **setting.analyze_options)

    items, table = plan(data, what="compute_tradeoff", folders=False)
    total = len(items)
    if total == 0:
        raise ValueError("compute_tradeoff needs at least one clip")
    if labels is not None:  # before any clip is read: a mismatch would otherwise score 0.000 at the end
        labels = check_labels(labels, model.labels, total)
    check_files(items)
    clips, found = [], []
    for item in tqdm(items, total=total, desc="clips", disable=not progress):
        if item.path is not None:  # decoded once here: a file's decoding is no part of the front end's time
            clips.append(load_audio(item.path, sample_rate))
            found.append(None)
        else:
            raw = item_value(item, table)
            clips.append(load_source(sound_value(raw, item.position, sample_rate), sample_rate))
            found.append(_labels_of(raw))
    if labels is None and all(v is not None for v in found):
        labels = check_labels(np.stack(found), model.labels, total, source="the dataset's")

    def one(setting: Setting, clip) -> tuple[np.ndarray, float, float]:
        """The user's call on one clip, window by window as ``analyze`` cuts it: the clip's class scores
        (:func:`~audiovis.analysis.clip_scores` of its windows' logits), the front end's seconds (timed apart;
        none for a Spectrogram) and analyze's."""
        m = _model_for(model, setting, models)
        front = body = 0.0
        window_logits = []
        for start in model_window_starts(m, clip):
            t0 = time.perf_counter()
            _, spec = window_input(m, clip, start)
            t1 = time.perf_counter()
            res = m.analyze(spec, **setting.analyze_options)
            body += time.perf_counter() - t1
            window_logits.append(res.logits)
            front += 0.0 if isinstance(clip, Spectrogram) else t1 - t0
        return clip_scores(np.stack(window_logits), m.multi_label), front, body

    logits: dict[str, np.ndarray] = {}
    timings: dict[str, list[tuple[float, float]]] = {s.name: [] for s in settings}
    with tqdm(total=(1 + repeats) * len(clips), desc="timing", disable=not progress) as bar:
        for setting in settings:  # warm-up, and the logits
            logits[setting.name] = np.stack([one(setting, clip)[0] for clip in clips])
        bar.update(len(clips))
        for r in range(repeats):
            # every clip under every setting in turn, the first setting rotating from clip to clip: a change in
            # the machine's speed (load, frequency) falls on all settings alike, not on whichever ran then
            sums = {s.name: [0.0, 0.0] for s in settings}
            for i, clip in enumerate(clips):
                k = (i + r) % len(settings)
                for setting in settings[k:] + settings[:k]:
                    _, front, body = one(setting, clip)
                    sums[setting.name][0] += front
                    sums[setting.name][1] += body
                bar.update(1)
            for name, (front, body) in sums.items():
                timings[name].append((front, body))

    full = settings[0].name
    top_full = logits[full].argmax(-1)
    medians = {k: (float(np.median([f for f, _ in v])), float(np.median([b for _, b in v]))) for k, v in timings.items()}
    full_total = sum(medians[full])
    full_macs = analytic_macs(model)
    rows, score_name = [], None
    for setting in settings:
        m = _model_for(model, setting, models)
        reduction = resolve_options(m, **setting.analyze_options)
        left = block_tokens(m, reduction)[-1][1] - int(m.num_prefix_tokens)
        if reduction is not None and reduction.method == "prune" and reduction.fuse and left < m.grid.num_patches:
            left -= 1  # the fused token
        front, body = medians[setting.name]
        macs = analytic_macs(m, reduction)
        row = dict(method=setting.name, keep_ratio=left / model.grid.num_patches, tokens=int(left),
                   frontend_ms=1000 * front / total, model_ms=1000 * body / total, time_ms=1000 * (front + body) / total,
                   speedup=full_total / (front + body), model_speedup=medians[full][1] / body,
                   macs=macs / 1e9, macs_ratio=macs / full_macs,
                   agreement=float(np.mean(logits[setting.name].argmax(-1) == top_full)))
        if labels is not None:
            score_name, row["score"] = _score(logits[setting.name], labels)
        rows.append(row)
    return Tradeoff(rows, score_name)


__all__ = ["ANCHORS", "Setting", "Tradeoff", "check_labels", "compute_tradeoff", "parse_setting"]
