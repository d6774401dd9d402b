"""Patch search: exact search against a plain reference, and the faiss IVF index's recall@10 against exact."""

from __future__ import annotations

import numpy as np
import pytest

from audiovis.store.search import PatchIndex, exact_search, normalize


def clustered(n: int, dim: int, centers: int, seed: int, spread: float = 0.35) -> np.ndarray:
    """Vectors around ``centers`` random directions (patch embeddings cluster by sound type), plus noise."""
    rng = np.random.default_rng(seed)
    middle = rng.standard_normal((centers, dim)).astype(np.float32)
    labels = rng.integers(0, centers, n)
    return middle[labels] + spread * rng.standard_normal((n, dim)).astype(np.float32) * np.sqrt(1.0)


def brute_force(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The plain definition: every cosine, sorted (ties to the lower index)."""
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = q.astype(np.float64) @ v.T.astype(np.float64)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


def test_exact_search_equals_the_definition():
    vectors = clustered(70_000, 24, 50, seed=0)  # more than one block of 65536 rows
    queries = clustered(20, 24, 50, seed=1)
    scores, ids = PatchIndex(vectors, method="exact").search(queries, 10)
    ref_scores, ref_ids = brute_force(vectors, queries, 10)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    assert (ids == ref_ids).mean() > 0.99  # float32 vs float64 may swap near-ties
    assert np.all(np.diff(scores, axis=1) <= 1e-7)


def test_ivf_recall_at_10_against_exact():
    dim, n = 64, 120_000
    vectors = clustered(n, dim, 300, seed=2)
    queries = clustered(200, dim, 300, seed=3)
    index = PatchIndex(vectors, method="ivf")
    assert index.index is not None and index.nprobe >= 16
    _, approx = index.search(queries, 10)
    _, exact = exact_search(normalize(vectors), normalize(queries), 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.95, recall
    # and it is an approximation that can miss: one probed cell finds fewer
    index.index.nprobe = 1
    _, few = index.search(queries, 10)
    assert np.mean([len(set(a) & set(e)) / 10 for a, e in zip(few, exact)]) < recall


def test_auto_switches_to_ivf_beyond_the_limit():
    vectors = clustered(5000, 16, 20, seed=4)
    assert PatchIndex(vectors).method == "exact"
    assert PatchIndex(vectors, exact_limit=1000).method == "ivf"


def test_bad_queries_and_methods():
    index = PatchIndex(clustered(100, 8, 3, seed=5))
    with pytest.raises(ValueError, match="query must have 8 values"):
        index.search(np.ones(7), 3)
    with pytest.raises(ValueError, match="NaN or Inf"):
        index.search(np.full(8, np.nan), 3)
    with pytest.raises(ValueError, match="method must be one of"):
        PatchIndex(np.ones((3, 8)), method="hnsw")
    scores, ids = index.search(np.ones(8), 500)
    assert ids.shape == (1, 100)  # k capped at the number of vectors
