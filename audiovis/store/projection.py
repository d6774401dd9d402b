"""2-D projections of clip vectors for the dataset map: PCA (numpy SVD) by default, UMAP when asked and installed.

Rows holding NaN (clips without vectors) stay NaN in the output, so the caller can leave them off the map.
"""

from __future__ import annotations

import numpy as np

METHODS = ("pca", "umap")


def project(vectors: np.ndarray, method: str = "pca", *, seed: int = 0) -> np.ndarray:
    """``[n, 2]`` float32 coordinates of ``vectors`` ``[n, dim]``; NaN rows stay NaN.

    ``"pca"``: the first two principal components (SVD of the centred finite rows; signs fixed so the largest
    loading of each component is positive, for a stable picture). ``"umap"``: umap-learn, seeded.
    """
    if method not in METHODS:
        raise ValueError(f"projection method must be one of {list(METHODS)}, got {method!r}")
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"vectors must be [n, dim], got shape {x.shape}")
    out = np.full((len(x), 2), np.nan, np.float32)
    ok = np.all(np.isfinite(x), axis=1)
    rows = x[ok].astype(np.float64)
    if len(rows) == 0:
        return out
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise ImportError("projection='umap' needs umap-learn: pip install umap-learn") from None
        if len(rows) < 4:
            raise ValueError(f"UMAP needs at least 4 clips with vectors, got {len(rows)}; use projection='pca'")
        reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, len(rows) - 1))
        out[ok] = reducer.fit_transform(rows).astype(np.float32)
        return out
    centred = rows - rows.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    comps = np.zeros((2, x.shape[1]))
    comps[: min(2, len(vt))] = vt[:2]
    for c in comps:
        if c.any() and c[np.argmax(np.abs(c))] < 0:
            c *= -1
    out[ok] = (centred @ comps.T).astype(np.float32)
    return out
