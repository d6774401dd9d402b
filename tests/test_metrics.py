"""audiovis.metrics: average precision, the one definition the probes, the trade-off table and the demo
evaluation share, against scikit-learn and against a plainly written reference."""

from __future__ import annotations

import numpy as np
import pytest

from audiovis.metrics import average_precision, mean_average_precision


def ap_by_definition(y: np.ndarray, s: np.ndarray) -> float:
    """Mean over positives of the precision among everything scored at least as high as it.

    Written from the definition with loops: a positive tied with others counts every item of its tie as
    ranked above it, which is what grouping tied scores into one threshold gives.
    """
    y, s = np.asarray(y).astype(bool), np.asarray(s, dtype=np.float64)
    precisions = []
    for i in np.flatnonzero(y):
        above = s >= s[i]
        precisions.append(y[above].sum() / above.sum())
    return float(np.mean(precisions)) if precisions else float("nan")


def test_average_precision_matches_scikit_learn_with_ties():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    for _ in range(50):
        targets = rng.random(40) < 0.3
        targets[0] = True
        scores = np.round(rng.random(40), 1)  # ties
        assert average_precision(targets, scores) == pytest.approx(average_precision_score(targets, scores), abs=1e-12)
        assert average_precision(targets.astype(np.float32), scores) == average_precision(targets, scores)


def test_average_precision_matches_its_definition():
    rng = np.random.default_rng(1)
    for _ in range(40):
        y = rng.random(50) < 0.3
        y[0] = True
        s = rng.random(50) if _ % 2 else rng.integers(0, 4, 50).astype(float)  # no ties, then many
        assert average_precision(y, s) == pytest.approx(ap_by_definition(y, s), abs=1e-12)


def test_average_precision_with_ties_and_edge_cases():
    # 0.9 (tie of a hit and a miss): precision 1/2 at recall 1/2; then 0.1: precision 2/3 at recall 1
    assert average_precision(np.array([1, 0, 1]), np.array([0.9, 0.9, 0.1])) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    # the order of tied items does not matter
    assert average_precision(np.array([0, 1, 1]), np.array([0.9, 0.9, 0.1])) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    assert average_precision(np.array([1, 1, 0]), np.array([3.0, 2.0, 1.0])) == 1.0
    assert average_precision(np.array([0, 0, 1]), np.array([3.0, 2.0, 1.0])) == pytest.approx(1 / 3)
    assert average_precision(np.array([1, 1]), np.array([np.inf, np.inf])) == 1.0
    assert np.isnan(average_precision(np.array([0, 0]), np.array([0.1, 0.2])))
    y = np.array([[1, 0], [0, 0], [1, 0]])
    assert mean_average_precision(y, np.array([[0.9, 0.1], [0.2, 0.5], [0.8, 0.3]])) == 1.0  # class 1 has no positive
    assert np.isnan(mean_average_precision(np.zeros((3, 2)), np.ones((3, 2))))


def test_arguments_the_wrong_way_round_raise():
    """Scores where the labels go are not 0/1: an error naming the order, never a wrong number."""
    y, s = np.array([1, 0, 1, 0]), np.array([0.8, 0.3, 0.6, 0.1])
    with pytest.raises(ValueError, match=r"0/1 labels, got 0\.8.*average_precision\(y_true, scores\)"):
        average_precision(s, y)
    with pytest.raises(ValueError, match="mean_average_precision"):
        mean_average_precision(s[:, None], y[:, None])
    with pytest.raises(ValueError, match="one length"):
        average_precision(y, s[:3])
    with pytest.raises(ValueError, match="NaN"):
        average_precision(y, np.array([0.8, np.nan, 0.6, 0.1]))
    with pytest.raises(ValueError, match=r"\[samples, classes\]"):
        mean_average_precision(y, s)
