"""Cosine search over patch vectors: exact for small stores, a faiss IVF index beyond ``EXACT_LIMIT`` vectors.

Vectors are L2-normalised once, so the inner product is the cosine. Exact search multiplies blocks of
rows with the queries and keeps a running top k. The approximate index is ``faiss.IndexIVFFlat`` with the
inner-product metric: ``nlist = 2 * sqrt(n)`` k-means cells trained on a sample, ``nprobe`` cells visited per
query (default ``max(64, nlist // 16)``), exact scores inside the visited cells. Why IVF and not HNSW:
see docs/ARCHITECTURE.md ("Embedding store").
"""

from __future__ import annotations

from typing import Any

import numpy as np

EXACT_LIMIT = 1_000_000
_BLOCK = 65536
METHODS = ("auto", "exact", "ivf")


def normalize(vectors: np.ndarray, copy: bool = True) -> np.ndarray:
    """Float32 rows scaled to unit length (zero rows stay zero); in place when ``copy=False`` and already float32."""
    out = np.asarray(vectors, dtype=np.float32)
    if copy or out is not vectors:
        out = out.copy()
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def resolve_method(method: str, size: int, exact_limit: int = EXACT_LIMIT) -> str:
    """``"exact"`` or ``"ivf"``: what ``method`` means for ``size`` vectors (``"auto"``: exact up to the limit)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    return ("exact" if size <= exact_limit else "ivf") if method == "auto" else method


def import_faiss():
    try:
        import faiss
    except ImportError:
        raise ImportError("approximate patch search needs faiss: pip install 'audiovis[store]' (faiss-cpu)") from None
    return faiss


class PatchIndex:
    """Top-k cosine search over ``vectors`` ``[n, dim]``.

    ``method``: ``"exact"``, ``"ivf"`` (faiss) or ``"auto"`` (exact up to ``exact_limit`` vectors).
    ``copy=False`` normalises a float32 ``vectors`` in place (saves one copy of millions of vectors).
    """

    def __init__(self, vectors: np.ndarray, *, method: str = "auto", exact_limit: int = EXACT_LIMIT,
                 nlist: int | None = None, nprobe: int | None = None, seed: int = 0, copy: bool = True) -> None:
        vectors = np.asarray(vectors)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be [n, dim], got shape {vectors.shape}")
        self.size, self.dim = vectors.shape
        self.method = resolve_method(method, self.size, exact_limit)
        self.vectors = normalize(vectors, copy=copy)
        self.index: Any = None
        if self.method == "ivf":
            self._build_ivf(nlist, nprobe, seed)

    def _build_ivf(self, nlist: int | None, nprobe: int | None, seed: int) -> None:
        faiss = import_faiss()
        n = self.size
        nlist = int(nlist or min(65536, max(1, int(2 * np.sqrt(n)))))
        nlist = max(1, min(nlist, n))
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = min(n, max(40 * nlist, 10_000))
        train = self.vectors if sample >= n else self.vectors[np.sort(rng.choice(n, sample, replace=False))]
        index.cp.seed = seed
        index.train(np.ascontiguousarray(train))
        index.add(self.vectors)
        index.nprobe = int(nprobe or max(64, nlist // 16))
        self.index = index
        self.vectors = None  # faiss holds its own copy: keep one in memory, not two

    @classmethod
    def from_faiss(cls, index: Any, nprobe: int | None = None) -> "PatchIndex":
        """Wrap a faiss IVF index read from disk (see :mod:`audiovis.store.index_file`)."""
        self = cls.__new__(cls)
        self.size, self.dim, self.method, self.vectors, self.index = int(index.ntotal), int(index.d), "ivf", None, index
        if nprobe is not None:
            index.nprobe = int(nprobe)
        return self

    @property
    def nprobe(self) -> int | None:
        return None if self.index is None else int(self.index.nprobe)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)`` ``[q, k']`` best first, ``k' = min(k, n)``; ``queries`` ``[q, dim]`` or ``[dim]``."""
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"query must have {self.dim} values (the stored vectors' dimension), got shape {np.shape(queries)}")
        if not np.all(np.isfinite(q)):
            raise ValueError("query holds NaN or Inf")
        if not np.all(np.any(q != 0, axis=1)):
            raise ValueError("query is all zeros: cosine similarity needs a direction (every score would be 0)")
        q = normalize(q)
        k = min(int(k), self.size)
        if k <= 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        if self.index is not None:
            scores, ids = self.index.search(np.ascontiguousarray(q), k)
            return scores, ids
        return exact_search(self.vectors, q, k)


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner products of unit ``queries`` against unit ``vectors``, in blocks of rows."""
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(vectors), _BLOCK):
        scores = queries @ vectors[start:start + _BLOCK].T
        take = min(k, scores.shape[1])
        part = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        best_s = np.concatenate([best_s, np.take_along_axis(scores, part, axis=1)], axis=1)
        best_i = np.concatenate([best_i, part + start], axis=1)
        if best_s.shape[1] > k:
            keep = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
            best_s, best_i = np.take_along_axis(best_s, keep, axis=1), np.take_along_axis(best_i, keep, axis=1)
    order = np.lexsort((best_i, -best_s), axis=1) if best_s.size else np.zeros_like(best_i)
    return np.take_along_axis(best_s, order, axis=1), np.take_along_axis(best_i, order, axis=1)
