"""Deletion and insertion curves of a per-patch map (Petsiuk et al. 2018, "RISE"), on the model input.

Patches are ranked by the map (highest first) and removed (deletion) or restored (insertion) in that
order, ``steps`` steps from none to all, while the target class probability is recorded. Removing a
patch sets its whole footprint (e.g. 16 x 16 bins x frames) on the model input to a baseline value.

Overlapping patches (stride < patch size) share pixels. A shared pixel belongs to whichever of its
patches comes first in the order: deletion removes it with the first of them, insertion restores it
with the first of them. So both curves read the same map "pixel rank = earliest rank of a covering
patch"; after step ``k`` exactly the union of the first ``n_k`` footprints is removed (deletion) or
present (insertion). Pixels no patch covers (e.g. the last bins and frames of AST's input) keep their
value throughout: the model's patch embedding never reads them.

A faithful map gives a deletion curve that falls fast (small area) and an insertion curve that rises
fast (large area), compared with random orders of the same patches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from ..checks import check_int, check_number
from ..patches import PatchGrid

if TYPE_CHECKING:
    from bokeh.plotting import figure as Figure

#: Logits ``[B, classes]`` of a batch of model inputs ``[B, freq bins, frames]``.
Forward = Callable[[torch.Tensor], torch.Tensor]

#: Named baselines: what a removed patch's footprint becomes.
BASELINES = ("mean", "zero")
#: Random orders averaged for the random curves.
NUM_RANDOM_ORDERS = 3
#: Tokens per forward pass (inputs per batch = this / patches: 10 for the demo model, 4 for AST-base). 40
#: demo-model inputs on 2 cores, median seconds when no other process ran / while another one did: batches
#: of 4: 0.98 / 5.1, of 10: 0.96 / 3.7, of 40: 1.34 / 3.3. Small batches keep each input's activations in
#: cache; fewer, larger ones wait less on a core shared with another process. 10 is near the best of both.
BATCH_TOKENS = 5000
#: The curves' colours wherever they are drawn (deletion, insertion); random orders dashed in the same colour.
DELETION_COLOUR, INSERTION_COLOUR = "#d6604d", "#4393c3"
#: Most steps a curve takes: a point per step (steps past the patch count repeat points and cost no pass).
MAX_STEPS = 100_000


@dataclass(frozen=True, repr=False)
class Faithfulness:
    """Deletion/insertion curves of one per-patch map for one class, next to random orders.

    ``fractions`` ``[steps + 1]`` is the share of patches removed (deletion) or restored (insertion)
    at each step; the curves are the class probability there. Areas are trapezoids over ``fractions``
    (so in [0, 1]). ``random_*`` curves are the mean over ``num_random`` seeded random orders.

    Args:
        method: the map's name (or ``"custom"`` for a user's array).
        class_index: the class whose probability the curves follow.
        label: that class's name.
        baseline: the value removed footprints took.
        fractions: the share of patches removed or restored at each step ``[steps + 1]``.
        deletion: the class probability as the map's highest patches are removed ``[steps + 1]``.
        insertion: the class probability as they are restored into an all-baseline input ``[steps + 1]``.
        random_deletion: the deletion curve of random orders, mean over ``num_random`` orders.
        random_insertion: the insertion curve of random orders, likewise.
        num_random: random orders averaged.
        seed: the seed of the random orders.
        order: the patches in the map's order, highest first.
    """

    method: str
    class_index: int
    label: str
    baseline: float
    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    random_deletion: np.ndarray
    random_insertion: np.ndarray
    num_random: int
    seed: int
    order: np.ndarray = field(repr=False)

    @property
    def deletion_auc(self) -> float:
        """Area under the deletion curve: lower is more faithful."""
        return auc(self.fractions, self.deletion)

    @property
    def insertion_auc(self) -> float:
        """Area under the insertion curve: higher is more faithful."""
        return auc(self.fractions, self.insertion)

    @property
    def random_deletion_auc(self) -> float:
        """Area under the mean deletion curve of the random orders: a faithful map's deletion AUC is below it."""
        return auc(self.fractions, self.random_deletion)

    @property
    def random_insertion_auc(self) -> float:
        """Area under the mean insertion curve of the random orders: a faithful map's insertion AUC is above it."""
        return auc(self.fractions, self.random_insertion)

    def to_dict(self) -> dict:
        """Plain-JSON summary: the four areas and the curves as lists."""
        return {
            "method": self.method, "class_index": self.class_index, "label": self.label, "baseline": self.baseline,
            "deletion_auc": self.deletion_auc, "insertion_auc": self.insertion_auc,
            "random_deletion_auc": self.random_deletion_auc, "random_insertion_auc": self.random_insertion_auc,
            "fractions": self.fractions.tolist(), "deletion": self.deletion.tolist(),
            "insertion": self.insertion.tolist(), "random_deletion": self.random_deletion.tolist(),
            "random_insertion": self.random_insertion.tolist(),
        }

    def plot(self, *, width: int = 360, height: int = 260) -> "Figure":
        """A Bokeh figure of the four curves: deletion and insertion (solid) and their random orders (dashed),
        the areas in the legend; ``bokeh.io.show(f.plot())``, or several in a ``gridplot`` to compare maps."""
        from bokeh.models import Legend, LegendItem
        from bokeh.plotting import figure

        width = check_int(width, "width", minimum=100, what="a whole number of pixels, at least 100")
        height = check_int(height, "height", minimum=100, what="a whole number of pixels, at least 100")
        fig = figure(width=width, height=height, title=f"{self.method}: p({self.label})", x_range=(0, 1),
                     y_range=(0, 1.02), x_axis_label="share of patches removed / restored",
                     y_axis_label="class probability", tools="hover,save,reset",
                     tooltips=[("curve", "$name"), ("share", "@x{0%}"), ("p", "@y{0.000}")])
        curves = (("deletion", self.deletion, self.deletion_auc, DELETION_COLOUR, "solid"),
                  ("insertion", self.insertion, self.insertion_auc, INSERTION_COLOUR, "solid"),
                  ("random deletion", self.random_deletion, self.random_deletion_auc, DELETION_COLOUR, "dashed"),
                  ("random insertion", self.random_insertion, self.random_insertion_auc, INSERTION_COLOUR, "dashed"))
        items = []
        for name, curve, area, colour, dash in curves:
            line = fig.line(self.fractions, curve, name=name, color=colour, line_dash=dash, line_width=2)
            items.append(LegendItem(label=f"{name} AUC {area:.3f}", renderers=[line]))
        # below the plot, two columns: inside, it would hide the curves of a small figure
        fig.add_layout(Legend(items=items, ncols=2, label_text_font_size="8pt", spacing=8, padding=2, margin=2,
                              label_height=12, glyph_height=12), "below")
        return fig

    def __repr__(self) -> str:
        return (
            f"Faithfulness({self.method!r}, class {self.label!r}: deletion AUC {self.deletion_auc:.3f} "
            f"(random {self.random_deletion_auc:.3f}), insertion AUC {self.insertion_auc:.3f} "
            f"(random {self.random_insertion_auc:.3f}), {len(self.fractions) - 1} steps)"
        )


def auc(fractions: np.ndarray, curve: np.ndarray) -> float:
    """Trapezoidal area under ``curve`` over ``fractions``."""
    y, x = np.asarray(curve, dtype=np.float64), np.asarray(fractions, dtype=np.float64)
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x)))


def baseline_value(x: torch.Tensor, baseline: str | float) -> float:
    """The value a removed footprint takes: ``"mean"`` of the input, ``"zero"`` (0 of the normalised
    input), or a finite number."""
    if isinstance(baseline, str):
        if baseline == "mean":
            return float(x.double().mean())
        if baseline == "zero":
            return 0.0
        raise ValueError(f"baseline must be one of {list(BASELINES)} or a number, got {baseline!r}")
    return check_number(baseline, "baseline", what=f"one of {list(BASELINES)} or a finite number")


def check_map(scores, num_patches: int, what: str = "map") -> np.ndarray:
    """A per-patch map as float64 ``[num_patches]``, finite; else a ValueError that says what is wrong."""
    arr = np.asarray(scores)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{what} must be numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64).reshape(-1) if arr.ndim <= 1 else arr.astype(np.float64)
    if arr.ndim != 1 or arr.shape[0] != num_patches:
        raise ValueError(f"{what} must hold one value per patch ({num_patches}), got shape {np.shape(scores)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} holds a non-finite value at patch {int(np.flatnonzero(~np.isfinite(arr))[0])}")
    return arr


def patch_order(scores: np.ndarray) -> np.ndarray:
    """Patch indices from the highest score to the lowest (ties: lower index first)."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def step_counts(num_patches: int, steps: int) -> np.ndarray:
    """Patches removed or restored after each of ``steps + 1`` steps: ``round(k * N / steps)``."""
    return np.rint(np.arange(steps + 1) * num_patches / steps).astype(np.int64)


def pixel_ranks(order: np.ndarray, grid: PatchGrid) -> np.ndarray:
    """``[freq bins, frames]``: the earliest position in ``order`` of a patch covering each pixel
    (``num_patches`` where no patch covers it)."""
    n = grid.num_patches
    rank = np.empty(n, dtype=np.int64)
    rank[np.asarray(order)] = np.arange(n)
    (pf, pt), (sf, st) = grid.patch_size, grid.stride
    rows, cols = grid.grid_shape
    per_patch = rank.reshape(rows, cols)
    out = np.full(grid.input_shape, n, dtype=np.int64)
    # one pass per offset inside the footprint instead of one per patch
    for df in range(pf):
        for dt in range(pt):
            view = out[df: df + (rows - 1) * sf + 1: sf, dt: dt + (cols - 1) * st + 1: st]
            np.minimum(view, per_patch, out=view)
    return out


def class_probability(logits: torch.Tensor, class_index: int, multi_label: bool) -> torch.Tensor:
    """The class probability ``[B]``: sigmoid for multi-label models, softmax otherwise."""
    logits = logits.detach().float()
    if multi_label:
        return torch.sigmoid(logits[:, class_index])
    return torch.softmax(logits, dim=-1)[:, class_index]


def curves(
    forward: Forward,
    x: torch.Tensor,
    grid: PatchGrid,
    orders: Sequence[np.ndarray],
    counts: np.ndarray,
    *,
    baseline: float,
    class_index: int,
    multi_label: bool,
    batch_size: int | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(deletion, insertion)`` probability curves ``[len(counts)]`` for each order.

    The inputs every curve shares are run once: no patch removed (= all restored) and all removed
    (= none restored). The rest run in batches of ``batch_size`` (default: :data:`BATCH_TOKENS` tokens).
    """
    ends, middle = order_logits(forward, x, grid, orders, counts, baseline=baseline, batch_size=batch_size)
    return [curves_of(ends, m, counts, grid.num_patches, class_index=class_index, multi_label=multi_label)
            for m in middle]


def inner_counts(counts: np.ndarray, num_patches: int) -> np.ndarray:
    """The step counts strictly between none and all patches, once each, ascending."""
    counts = np.asarray(counts, dtype=np.int64)
    return np.unique(counts[(counts > 0) & (counts < num_patches)])


def order_logits(
    forward: Forward,
    x: torch.Tensor,
    grid: PatchGrid,
    orders: Sequence[np.ndarray],
    counts: np.ndarray,
    *,
    baseline: float,
    batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits of every input the curves of ``orders`` read, for all classes (so any class's curves
    follow without another pass): ``ends`` ``[2, classes]`` (the input itself, everything removed) and
    ``middle`` ``[len(orders), 2 (deletion, insertion), len(inner counts), classes]``.

    Args:
        forward: logits ``[B, classes]`` of model inputs ``[B, F, T]``.
        x: the model input ``[F, T]``.
        grid: the model's patches on ``x``.
        orders: patch orders, highest first.
        counts: patches removed / restored after each step (:func:`step_counts`).
        baseline: the value of removed pixels.
        batch_size: inputs per forward pass (default: :data:`BATCH_TOKENS` tokens).

    Returns:
        ``(ends, middle)``, float32 on the CPU.
    """
    n = grid.num_patches
    batch_size = batch_size or max(1, BATCH_TOKENS // n)
    x = x.detach().float().cpu()
    inner = inner_counts(counts, n)
    with torch.inference_mode():
        logits = torch.cat([forward(batch).detach().float().cpu()
                            for batch in _input_batches(x, grid, orders, inner, baseline, batch_size)])
    return logits[:2], logits[2:].reshape(len(orders), 2, len(inner), logits.shape[-1])


def _input_batches(x: torch.Tensor, grid: PatchGrid, orders: Sequence[np.ndarray], inner: np.ndarray,
                   baseline: float, batch_size: int):
    """The inputs :func:`order_logits` runs, in its order, ``batch_size`` at a time: the original and
    everything removed, then each order's deletion and insertion inputs at the ``inner`` counts. Each batch
    is made when it is needed, so memory holds about two batches, not every input of every step and order."""
    n = grid.num_patches
    covered = torch.from_numpy(pixel_ranks(np.arange(n), grid) < n)
    pending = [x[None], torch.where(covered, torch.full_like(x, baseline), x)[None]]
    held = 2

    def groups():
        for order in orders if len(inner) else []:
            ranks = torch.from_numpy(pixel_ranks(order, grid))
            for mode in ("deletion", "insertion"):
                for part in np.array_split(inner, -(-len(inner) // batch_size)):
                    yield masked_inputs(x, ranks, part, baseline, mode, n)

    for made in groups():
        pending.append(made)
        held += len(made)
        while held >= batch_size:
            joined = torch.cat(pending)
            yield joined[:batch_size]
            pending, held = [joined[batch_size:]], held - batch_size
    rest = torch.cat(pending)  # (without inner counts, the two shared inputs alone)
    for start in range(0, held, batch_size):
        yield rest[start : start + batch_size]


def curves_of(
    ends: torch.Tensor, middle: torch.Tensor, counts: np.ndarray, num_patches: int, *, class_index: int,
    multi_label: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """``(deletion, insertion)`` probability curves ``[len(counts)]`` of one order from its logits
    (:func:`order_logits`: ``ends`` ``[2, classes]``, ``middle`` ``[2, inner, classes]``).

    Args:
        ends: logits of the input itself and of everything removed.
        middle: logits of the order's deletion and insertion inputs at the inner counts.
        counts: patches removed / restored after each step.
        num_patches: patches of the grid.
        class_index: the class followed.
        multi_label: sigmoid (True) or softmax probabilities.
    """
    n = num_patches
    full, empty = class_probability(ends, class_index, multi_label).numpy().astype(np.float64)
    inner = inner_counts(counts, n)
    where = np.minimum(np.searchsorted(inner, counts), max(len(inner) - 1, 0))
    if len(inner):
        d_inner, i_inner = (class_probability(m, class_index, multi_label).numpy().astype(np.float64) for m in middle)
        d_mid, i_mid = d_inner[where], i_inner[where]
    else:
        d_mid, i_mid = np.full(len(counts), empty), np.full(len(counts), full)
    deletion = np.where(counts <= 0, full, np.where(counts >= n, empty, d_mid))
    insertion = np.where(counts <= 0, empty, np.where(counts >= n, full, i_mid))
    return deletion.astype(np.float64), insertion.astype(np.float64)


def masked_inputs(x: torch.Tensor, ranks: torch.Tensor, counts: np.ndarray, baseline: float, mode: str, n: int) -> torch.Tensor:
    """``[len(counts), F, T]``: ``x`` with the pixels of the first ``count`` patches of the order (``ranks``
    from :func:`pixel_ranks`) replaced by ``baseline`` (``mode="deletion"``), or only those pixels kept
    (``"insertion"``); ``n`` is the patch count, the rank of pixels no patch covers (always kept)."""
    first = ranks[None] < torch.from_numpy(np.asarray(counts, dtype=np.int64))[:, None, None]
    keep = ~first if mode == "deletion" else first | (ranks[None] >= n)
    return torch.where(keep, x[None], torch.full_like(x, baseline)[None])


def random_orders(num_patches: int, seed: int, count: int = NUM_RANDOM_ORDERS) -> list[np.ndarray]:
    """``count`` random permutations of the patches from ``seed`` (reproducible)."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(num_patches) for _ in range(count)]


def faithfulness(
    forward: Forward,
    x: torch.Tensor,
    grid: PatchGrid,
    scores,
    *,
    class_index: int,
    multi_label: bool,
    steps: int = 20,
    baseline: str | float = "mean",
    seed: int = 0,
    method: str = "map",
    label: str = "",
    num_random: int = NUM_RANDOM_ORDERS,
    random_cache: dict | None = None,
) -> Faithfulness:
    """Deletion and insertion curves of ``scores`` ``[num_patches]`` and of random orders, for one class.

    Args:
        forward: logits ``[B, classes]`` of model inputs ``[B, F, T]`` (no gradient needed).
        x: the model input ``[F, T]``.
        grid: the model's patches on ``x``.
        scores: the per-patch map; patches are removed highest first.
        class_index: the class whose probability is followed.
        multi_label: sigmoid (True) or softmax probabilities.
        steps: steps from no patch to all patches.
        baseline: ``"mean"`` (the input's mean value), ``"zero"``, or a number.
        seed: seed of the random orders.
        method: the map's name, as the result reports it.
        label: the class's name, as the result reports it.
        num_random: random orders averaged for the random curves (at least 1).
        random_cache: a dict keeping the random orders' logits between calls on the same input (they
            depend on neither the map nor the class).

    Returns:
        A :class:`Faithfulness`.
    """
    steps = check_int(steps, "steps", minimum=1, maximum=MAX_STEPS,
                      what=f"a positive integer up to {MAX_STEPS} (more steps than patches only repeat points)")
    if tuple(x.shape) != tuple(grid.input_shape):
        raise ValueError(f"model input of shape {tuple(x.shape)} does not match the grid's {grid.input_shape}")
    scores = check_map(scores, grid.num_patches)
    value = baseline_value(x, baseline)
    seed = check_int(seed, "seed", minimum=0)
    num_random = check_int(num_random, "num_random", minimum=1)
    counts = step_counts(grid.num_patches, steps)
    order = patch_order(scores)
    # the random orders' logits do not depend on the map nor on the class: computed once per input
    key = (steps, value, int(seed), int(num_random))
    cached = None if random_cache is None else random_cache.get(key)
    orders = [order] if cached is not None else [order, *random_orders(grid.num_patches, int(seed), num_random)]
    ends, middle = order_logits(forward, x, grid, orders, counts, baseline=value)
    if cached is None:
        cached = middle[1:].clone()
        if random_cache is not None:
            random_cache[key] = cached
    c, n = int(class_index), grid.num_patches
    deletion, insertion = curves_of(ends, middle[0], counts, n, class_index=c, multi_label=multi_label)
    randoms = [curves_of(ends, m, counts, n, class_index=c, multi_label=multi_label) for m in cached]
    random_deletion, random_insertion = (np.mean([r[k] for r in randoms], axis=0) for k in (0, 1))
    fractions = counts / grid.num_patches
    return Faithfulness(
        method=method, class_index=int(class_index), label=label, baseline=value, fractions=fractions,
        deletion=deletion, insertion=insertion, random_deletion=random_deletion, random_insertion=random_insertion,
        num_random=int(num_random), seed=int(seed), order=order,
    )
