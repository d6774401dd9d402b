"""Linear probes on frozen features: how much of a task each layer's embedding already holds.

``LinearProbe`` trains a linear (or one-hidden-layer) head with torch on fixed features, for multi-class
(integer labels, softmax cross-entropy) or multi-label (multi-hot labels, per-class sigmoid) tasks, and
scores it by k-fold cross-validation. ``probe_layers`` does that for every block of a model.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_int, check_number
from .metrics import mean_average_precision

if TYPE_CHECKING:
    from bokeh.plotting import figure as Figure

    from .models.base import SpectrogramModelMixin

Task = Literal["auto", "multiclass", "multilabel"]


#: training samples from which a probe trains on every intra-op thread (below, on one: there small matrices lose
#: more to thread hand-offs than they gain; at 80 k x 192 two threads train 1.4x faster)
THREADED_SAMPLES = 2000


@contextmanager
def _threads_for(samples: int) -> Iterator[None]:
    """Run on one intra-op thread for fewer than :data:`THREADED_SAMPLES` samples, else as torch is set."""
    before = torch.get_num_threads()
    if samples < THREADED_SAMPLES:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _logits_by_class(head: nn.Module, xs_t: torch.Tensor) -> torch.Tensor:
    """``head(xs).T`` ``[classes, n]`` from ``xs_t`` ``[dim, n]``: every Linear as ``W @ x + b`` on columns.

    The same sums as ``head(xs)``, laid out class-major: softmax/log-softmax over a few classes then runs along
    long contiguous rows (3x faster than over the short last dimension of ``[n, classes]``), and so do the
    weight gradients' products. The head's modules are kept as they are, for prediction.
    """
    z = xs_t
    for module in head if isinstance(head, nn.Sequential) else [head]:
        if isinstance(module, nn.Linear):
            z = torch.addmm(module.bias[:, None], module.weight, z)
        elif isinstance(module, nn.ReLU):
            z = torch.relu(z)
        else:
            raise TypeError(f"a probe head is made of Linear and ReLU layers, not {type(module).__name__}")
    return z


def _task_of(y: np.ndarray, task: str) -> str:
    if task not in ("auto", "multiclass", "multilabel"):
        raise ValueError(f"task must be 'auto', 'multiclass' or 'multilabel', got {task!r}")
    if task != "auto":
        return task
    return "multiclass" if y.ndim == 1 else "multilabel"


def _check_xy(X, y, task: str) -> tuple[np.ndarray, np.ndarray, str]:
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    if X.ndim != 2:
        raise ValueError(f"features must be [samples, dim], got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("features hold NaN or Inf")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"{X.shape[0]} feature rows but {y.shape[0]} labels")
    task = _task_of(y, task)
    if task == "multiclass":
        if y.ndim != 1 or y.dtype.kind not in "iu" or (y.size and y.min() < 0):
            raise ValueError(f"multi-class labels must be non-negative integers [samples], got {y.dtype} {y.shape}")
    elif y.ndim != 2 or not np.isin(y, (0, 1)).all():
        raise ValueError(f"multi-label targets must be multi-hot 0/1 [samples, classes], got {y.dtype} {y.shape}")
    return X, y, task


@dataclass
class ProbeScores:
    """Cross-validated scores: mean and standard deviation over folds, and chance levels on the same data."""

    accuracy: float
    accuracy_std: float
    mAP: float
    mAP_std: float
    chance_accuracy: float
    chance_mAP: float
    folds: int
    task: str

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class LinearProbe:
    """A linear head (``hidden=None``) or one hidden ReLU layer of ``hidden`` units on frozen features.

    Features are standardised with the training set's mean and std; training is full-batch AdamW for
    ``epochs`` steps from a fixed ``seed``. ``task="auto"`` reads integer ``[n]`` labels as multi-class
    and 0/1 ``[n, classes]`` targets as multi-label.

    Args:
        hidden: units of one hidden ReLU layer (None: a linear head).
        task: ``"multiclass"``, ``"multilabel"`` or ``"auto"`` (told by the labels' shape).
        epochs: full-batch training steps.
        lr: AdamW's learning rate, > 0.
        weight_decay: AdamW's weight decay, >= 0.
        seed: seed of the initial weights.
    """

    def __init__(
        self,
        hidden: int | None = None,
        *,
        task: Task = "auto",
        epochs: int = 300,
        lr: float = 1e-2,
        weight_decay: float = 1e-3,
        seed: int = 0,
    ) -> None:
        if hidden is not None:
            hidden = check_int(hidden, "hidden", minimum=1, what="None (linear) or a positive number of units")
        epochs = check_int(epochs, "epochs", minimum=1)
        lr = check_number(lr, "lr", low=0, low_open=True)
        weight_decay = check_number(weight_decay, "weight_decay", low=0, what="a non-negative number")
        _task_of(np.zeros(1), task)
        self.hidden, self.task, self.epochs = hidden, task, epochs
        self.lr, self.weight_decay, self.seed = lr, weight_decay, seed
        self.head_: nn.Module | None = None

    def _build(self, dim: int, classes: int) -> nn.Module:
        if self.hidden is None:
            return nn.Linear(dim, classes)
        return nn.Sequential(nn.Linear(dim, self.hidden), nn.ReLU(), nn.Linear(self.hidden, classes))

    def fit(self, X, y) -> "LinearProbe":
        """Train on features ``X`` ``[n, dim]`` and labels ``y`` (``[n]`` class ids or ``[n, classes]`` multi-hot)."""
        X, y, task = _check_xy(X, y, self.task)
        if X.shape[0] == 0:
            raise ValueError("no training samples")
        self.task_ = task
        self.classes_ = int(y.max()) + 1 if task == "multiclass" else int(y.shape[1])
        self.mean_ = X.mean(axis=0)
        self.std_ = X.std(axis=0) + 1e-6
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            head = self._build(X.shape[1], self.classes_)
        xs_t = torch.from_numpy(np.ascontiguousarray(((X - self.mean_) / self.std_).T))  # [dim, n]
        if task == "multiclass":
            target = torch.from_numpy(y.astype(np.int64))

            def loss_of(logits_t: torch.Tensor) -> torch.Tensor:  # cross-entropy, the softmax over classes
                return F.nll_loss(F.log_softmax(logits_t, dim=0).T, target)
        else:
            target_t = torch.from_numpy(np.ascontiguousarray(y.astype(np.float32).T))

            def loss_of(logits_t: torch.Tensor) -> torch.Tensor:  # mean binary cross-entropy of every label
                return F.binary_cross_entropy_with_logits(logits_t, target_t)
        opt = torch.optim.AdamW(head.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        with torch.enable_grad(), _threads_for(X.shape[0]):
            for _ in range(self.epochs):
                opt.zero_grad()
                loss = loss_of(_logits_by_class(head, xs_t))
                loss.backward()
                opt.step()
        self.head_ = head.eval()
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``[n, classes]`` (softmax for multi-class, sigmoid for multi-label)."""
        if self.head_ is None:
            raise RuntimeError("LinearProbe is not fitted yet; call fit(X, y) first")
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.mean_.shape[0]:
            raise ValueError(f"features must be [samples, {self.mean_.shape[0]}], got shape {X.shape}")
        with torch.no_grad():
            logits = self.head_(torch.from_numpy((X - self.mean_) / self.std_))
        probs = logits.softmax(-1) if self.task_ == "multiclass" else logits.sigmoid()
        return probs.numpy()

    def predict(self, X) -> np.ndarray:
        """Class ids ``[n]`` (multi-class) or 0/1 ``[n, classes]`` at probability 0.5 (multi-label)."""
        probs = self.predict_proba(X)
        return probs.argmax(-1) if self.task_ == "multiclass" else (probs >= 0.5).astype(np.int64)

    def score(self, X, y) -> dict[str, float]:
        """``accuracy`` (multi-label: exact match of the label set) and ``mAP`` (macro AP over present classes)."""
        X, y, task = _check_xy(X, y, self.task_ if self.head_ is not None else self.task)
        probs = self.predict_proba(X)
        if task == "multiclass":
            onehot = np.zeros_like(probs, dtype=bool)
            valid = y < probs.shape[1]
            onehot[np.flatnonzero(valid), y[valid]] = True
            return {"accuracy": float(np.mean(probs.argmax(-1) == y)), "mAP": mean_average_precision(onehot, probs)}
        exact = np.all((probs >= 0.5) == y.astype(bool), axis=1)
        return {"accuracy": float(np.mean(exact)), "mAP": mean_average_precision(y, probs)}

    def cross_validate(self, X, y, *, folds: int = 5) -> ProbeScores:
        """Train on ``folds - 1`` parts and score on the held-out one, for every fold (stratified for multi-class).

        Args:
            X: features ``[samples, dim]``.
            y: labels: class ids ``[samples]`` (multi-class) or multi-hot ``[samples, classes]`` (multi-label).
            folds: parts the samples are split into, in ``[2, samples]``.

        Returns:
            The :class:`ProbeScores`: mean and spread over folds, and chance levels on the same data.
        """
        X, y, task = _check_xy(X, y, self.task)
        folds = check_int(folds, "folds", minimum=2, maximum=X.shape[0],
                          what=f"an integer in [2, {X.shape[0]}] (the number of samples)")
        scores = []
        for test in kfold_indices(y if task == "multiclass" else None, X.shape[0], folds, self.seed):
            train = np.setdiff1d(np.arange(X.shape[0]), test)
            probe = LinearProbe(self.hidden, task=task, epochs=self.epochs, lr=self.lr,
                                weight_decay=self.weight_decay, seed=self.seed)
            scores.append(probe.fit(X[train], y[train]).score(X[test], y[test]))
        acc = np.array([s["accuracy"] for s in scores])
        maps = np.array([s["mAP"] for s in scores])
        return ProbeScores(
            accuracy=float(acc.mean()), accuracy_std=float(acc.std()),
            mAP=float(np.nanmean(maps)), mAP_std=float(np.nanstd(maps)),
            chance_accuracy=chance_accuracy(y, task), chance_mAP=chance_map(y, task),
            folds=folds, task=task,
        )


def kfold_indices(labels: np.ndarray | None, n: int, folds: int, seed: int) -> list[np.ndarray]:
    """Test indices of each fold: a seeded shuffle, dealt round-robin (class by class when ``labels`` given)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    if labels is not None:
        order = order[np.argsort(labels[order], kind="stable")]
    return [np.sort(order[f::folds]) for f in range(folds)]


def chance_accuracy(y: np.ndarray, task: str) -> float:
    """Accuracy of always answering the most frequent class (multi-label: the most frequent label set)."""
    if task == "multiclass":
        return float(np.bincount(y).max() / y.size)
    _, counts = np.unique(y.astype(np.int8), axis=0, return_counts=True)
    return float(counts.max() / y.shape[0])


def chance_map(y: np.ndarray, task: str) -> float:
    """Expected AP of random scores: each class's positive rate, averaged over classes."""
    if task == "multiclass":
        rates = np.bincount(y) / y.size
        return float(rates[rates > 0].mean())
    rates = y.mean(axis=0)
    return float(rates[rates > 0].mean())


@dataclass
class ProbeTable:
    """One row per layer: ``layer``, ``accuracy``, ``accuracy_std``, ``mAP``, ``mAP_std`` and chance levels."""

    rows: list[dict] = field(default_factory=list)
    metric: str = "mAP"

    @property
    def best(self) -> dict:
        """The row with the highest ``metric``."""
        return max(self.rows, key=lambda r: r[self.metric])

    def column(self, name: str) -> np.ndarray:
        return np.array([r[name] for r in self.rows])

    def to_markdown(self) -> str:
        lines = ["| layer | accuracy | mAP | chance accuracy | chance mAP |", "|---:|---:|---:|---:|---:|"]
        for r in self.rows:
            lines.append(
                f"| {r['layer']} | {r['accuracy']:.3f} ± {r['accuracy_std']:.3f} | {r['mAP']:.3f} ± {r['mAP_std']:.3f} "
                f"| {r['chance_accuracy']:.3f} | {r['chance_mAP']:.3f} |"
            )
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def plot(self, *, width: int = 560, height: int = 300) -> "Figure":
        """A Bokeh line plot of ``metric`` (mean ± std over folds) against layer, with the chance level."""
        from bokeh.models import ColumnDataSource, Whisker
        from bokeh.plotting import figure

        layers, value, std = self.column("layer"), self.column(self.metric), self.column(f"{self.metric}_std")
        src = ColumnDataSource(dict(layer=layers, value=value, lower=value - std, upper=value + std))
        fig = figure(width=width, height=height, title=f"Linear probe {self.metric} by layer",
                     x_axis_label="layer (block)", y_axis_label=self.metric,
                     tools="hover,save,reset", tooltips=[("layer", "@layer"), (self.metric, "@value{0.000}")])
        fig.line("layer", "value", source=src, line_width=2)
        fig.scatter("layer", "value", source=src, size=7)
        fig.add_layout(Whisker(source=src, base="layer", upper="upper", lower="lower"))
        chance = float(self.column(f"chance_{self.metric}").mean())
        fig.line([layers.min(), layers.max()], [chance, chance], line_dash="dashed", color="gray", legend_label="chance")
        fig.legend.location = "bottom_right"
        return fig


def dataset_labels(dataset) -> np.ndarray:
    """The ``.labels`` of every item of ``dataset`` stacked: multi-hot ``[n, classes]`` or class ids ``[n]``."""
    labels = []
    for i in range(len(dataset)):
        item = dataset[i]
        if not hasattr(item, "labels"):
            raise ValueError(f"dataset item {i} has no .labels; pass labels=... to probe_layers")
        value = item.labels
        labels.append(value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value))
    out = np.stack(labels)
    return out.astype(np.int64) if out.ndim == 1 or np.isin(out, (0, 1)).all() else out


def probe_layers(
    model: "SpectrogramModelMixin",
    dataset,
    *,
    labels: np.ndarray | Sequence | None = None,
    layers: Sequence[int] | None = None,
    pooling: Literal["mean", "cls"] = "mean",
    hidden: int | None = None,
    folds: int = 5,
    batch_size: int = 8,
    cache_dir: str | os.PathLike | None = None,
    sample_rate: int | None = None,
    seed: int = 0,
    progress: bool = True,
    **probe_options,
) -> ProbeTable:
    """Cross-validate a :class:`LinearProbe` on every block's output of ``model`` (``layers``: block indices).

    ``dataset`` is anything :func:`audiovis.extract_embeddings` reads; ``labels`` default to the items'
    ``.labels`` (multi-hot for :class:`audiovis.datasets.SyntheticEvents`). Embeddings of all layers come
    from one pass over the data (cached in ``cache_dir`` when given).

    Args:
        model: the frozen model whose blocks are probed.
        dataset: the clips (anything :func:`audiovis.extract_embeddings` reads).
        labels: one label per clip (None: the items' ``.labels``).
        layers: block indices probed (None: every block).
        pooling: how a clip's tokens become one vector: ``"mean"`` of the patches or the ``"cls"`` token.
        hidden: units of the probe's hidden layer (None: linear).
        folds: cross-validation folds.
        batch_size: clips per forward pass.
        cache_dir: where embeddings are cached between runs (None: not cached).
        sample_rate: the rate of clips given as arrays.
        seed: the probe's seed.
        progress: show a progress bar.
        **probe_options: more :class:`LinearProbe` settings (``epochs``, ``lr``, ``weight_decay``, ``task``).

    Returns:
        A :class:`ProbeTable`: one row of scores per layer.
    """
    from .embeddings import extract_embeddings
    from .models.base import check_model

    check_model(model, "probe_layers")
    if pooling not in ("mean", "cls"):
        raise ValueError(f"probe_layers pools each clip to one vector: pooling must be 'mean' or 'cls', got {pooling!r}")
    y = dataset_labels(dataset) if labels is None else np.asarray(labels)
    layers = list(range(model.num_layers)) if layers is None else list(layers)
    feats = extract_embeddings(dataset, model, layer=layers, pooling=pooling, batch_size=batch_size,
                               cache_dir=cache_dir, sample_rate=sample_rate, progress=progress)
    if len(feats[layers[0]]) == 0:
        raise ValueError("probe_layers: no clips to probe (the dataset is empty)")
    probe = LinearProbe(hidden, seed=seed, **probe_options)
    rows = []
    for layer in layers:
        scores = probe.cross_validate(feats[layer], y, folds=folds)
        rows.append({"layer": layer, **scores.as_dict()})
    metric = "mAP" if rows and rows[0]["task"] == "multilabel" else "accuracy"
    return ProbeTable(rows, metric)
