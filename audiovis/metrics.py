"""Ranking metrics, each defined once: average precision and its mean over classes.

Arguments come in scikit-learn's order, labels first: ``average_precision(y_true, scores)``, as
``sklearn.metrics.average_precision_score(y_true, y_score)``. The labels must be 0/1 (or bools), so two
arguments passed the wrong way round (scores where labels go) raise instead of giving a wrong number.
Used by the probes (:mod:`audiovis.probe`), the trade-off table (:mod:`audiovis.tradeoff`) and the demo
model's evaluation (:mod:`audiovis.demo.evaluate`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["average_precision", "mean_average_precision"]


def _binary(y_true, what: str) -> np.ndarray:
    """``y_true`` as bools, or a ValueError unless every entry is 0/1 (or a bool)."""
    y = np.asarray(y_true)
    if y.dtype == bool:
        return y
    if y.dtype.kind not in "iuf" or not np.all((y == 0) | (y == 1)):
        sample = next((v for v in y.ravel().tolist() if v not in (0, 1)), None) if y.dtype.kind in "iuf" else y.dtype
        raise ValueError(
            f"{what}: y_true must hold 0/1 labels, got {sample!r}; the labels come first, "
            f"as in scikit-learn: {what}(y_true, scores)"
        )
    return y == 1


def average_precision(y_true, scores) -> float:
    """Average precision of ``scores`` at ranking the positives of ``y_true`` first (scikit-learn's definition).

    The area under the precision-recall step curve: over the distinct score thresholds, highest first, the
    precision at each threshold times the recall it adds. Tied scores make one threshold, so a tie of a hit
    and a miss counts half right whatever their order. Equal to
    ``sklearn.metrics.average_precision_score(y_true, scores)``.

    Args:
        y_true: labels ``[n]``, 1 (or True) for a positive, 0 for a negative.
        scores: real scores ``[n]``, higher meaning more likely positive.

    Returns:
        The AP in ``[0, 1]``; NaN when ``y_true`` has no positive.

    Raises:
        ValueError: the two are not 1-D of one length, ``y_true`` holds a value other than 0/1, or a score
            is NaN.
    """
    y = _binary(y_true, "average_precision")
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.shape != y.shape:
        raise ValueError(
            f"average_precision: y_true and scores must be 1-D of one length, got shapes {y.shape} and {s.shape}"
        )
    if np.isnan(s).any():
        raise ValueError(f"average_precision: scores hold NaN (first at {int(np.flatnonzero(np.isnan(s))[0])})")
    if not y.any():
        return float("nan")
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True]  # a threshold ends after the last item of each run of equal scores
    hits = np.cumsum(y)[last_of_tie]
    precision = hits / (np.flatnonzero(last_of_tie) + 1)
    recall_gain = np.diff(np.r_[0, hits]) / hits[-1]
    return float(np.sum(precision * recall_gain))


def mean_average_precision(y_true, scores) -> float:
    """Macro mean of :func:`average_precision` per class, over the classes with at least one positive.

    Args:
        y_true: multi-hot labels ``[n, classes]`` (0/1 or bools).
        scores: scores ``[n, classes]``.

    Returns:
        The mean AP; NaN when no class has a positive.

    Raises:
        ValueError: the two are not 2-D of one shape, or as :func:`average_precision`.
    """
    y = _binary(y_true, "mean_average_precision")
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 2 or s.shape != y.shape:
        raise ValueError(
            "mean_average_precision: y_true and scores must be [samples, classes] of one shape, "
            f"got {y.shape} and {s.shape}"
        )
    aps = [average_precision(y[:, c], s[:, c]) for c in range(y.shape[1]) if y[:, c].any()]
    return float(np.mean(aps)) if aps else float("nan")
