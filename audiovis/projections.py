"""2-D projections of embeddings: the explorer's patch plot (``pca_2d``) and the dataset map (``project``).

Both fix each axis's sign the same way (its largest loading positive), so a layer or a store always gives the
same picture.
"""

from __future__ import annotations

import numpy as np
import torch


def _oriented(components: np.ndarray) -> np.ndarray:
    """``[k, dim]`` components with each row's largest-magnitude loading made positive (zero rows kept)."""
    out = np.array(components, copy=True)
    for row in out:
        if row.any() and row[np.argmax(np.abs(row))] < 0:
            row *= -1
    return out


def pca_2d(embeddings: torch.Tensor | np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Project ``[n, dim]`` embeddings onto their first two principal components.

    Returns ``(coords [n, 2] float32, explained_variance_ratio [2])``. ``torch.pca_lowrank`` is
    randomised: it runs under a fixed seed (without touching the global RNG) so a layer always gets
    the same picture, and each axis is oriented so its largest loading is positive.
    """
    if isinstance(embeddings, torch.Tensor):
        x = embeddings.detach().to("cpu", torch.float32)
    else:
        x = torch.from_numpy(np.array(embeddings, dtype=np.float32))  # a copy: Analysis arrays are read-only
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"embeddings must be [patches >= 2, dim >= 1], got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("embeddings contain NaN or Inf; cannot project them")
    centred = x - x.mean(dim=0, keepdim=True)
    q = min(24, *x.shape)  # oversampled: with q=6 a flat spectrum kept only ~90% of the best plane's variance
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, s, v = torch.pca_lowrank(x, q=q, center=True, niter=6)
    k = min(2, v.shape[1])
    axes = torch.from_numpy(_oriented(v[:, :k].numpy().T).T.copy())
    coords = centred @ axes
    total = float(centred.square().sum())
    ratio = (s[:k].square() / total).numpy() if total > 0 else np.zeros(k)
    if k < 2:  # one-dimensional embeddings: the second axis is flat
        coords = torch.cat([coords, torch.zeros_like(coords)], dim=1)
        ratio = np.append(ratio, 0.0)
    return coords.numpy().astype(np.float32), ratio.astype(np.float64)


METHODS = ("pca", "umap")


def project(vectors: np.ndarray, method: str = "pca", *, seed: int = 0) -> np.ndarray:
    """``[n, 2]`` float32 coordinates of ``vectors`` ``[n, dim]``; NaN rows stay NaN.

    ``"pca"``: the first two principal components of the centred finite rows (the eigenvectors of their
    ``[dim, dim]`` scatter matrix when there are more rows than dimensions, else an SVD; signs fixed so the
    largest loading of each component is positive, for a stable picture). ``"umap"``: umap-learn, seeded.
    """
    if method not in METHODS:
        raise ValueError(f"projection method must be one of {list(METHODS)}, got {method!r}")
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"vectors must be [n, dim], got shape {x.shape}")
    out = np.full((len(x), 2), np.nan, np.float32)
    ok = np.all(np.isfinite(x), axis=1)
    if not ok.any():
        return out
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise ImportError("projection='umap' needs umap-learn: pip install 'audiovis[umap]'") from None
        rows = x[ok].astype(np.float64)
        if len(rows) < 4:
            raise ValueError(f"UMAP needs at least 4 clips with vectors, got {len(rows)}; use projection='pca'")
        # seeded, umap-learn runs on one thread anyway; n_jobs=1 says so (else it warns that it overrode n_jobs)
        reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, len(rows) - 1), n_jobs=1)
        out[ok] = reducer.fit_transform(rows).astype(np.float32)
        return out
    rows = x if ok.all() else x[ok]  # no copy of 100 k clips' vectors when every row is finite
    mean = rows.mean(axis=0, dtype=np.float64)
    comps = np.zeros((2, x.shape[1]))
    if len(rows) > x.shape[1]:  # many rows (100 k clips): the top eigenvectors of the small [dim, dim]
        values, vectors = np.linalg.eigh(_scatter(rows, mean))  # scatter matrix, not an SVD of every row
        top = vectors[:, ::-1][:, :2].T  # (torch's eigh: seconds here, numpy's: milliseconds)
        comps[: len(top)] = top * (values[::-1][: len(top), None] > 0)
    else:
        _, _, vt = np.linalg.svd(rows.astype(np.float64) - mean, full_matrices=False)
        comps[: min(2, len(vt))] = vt[:2]
    axes = _oriented(comps).T  # [dim, 2]
    # (rows - mean) @ axes without a centred copy: rows @ axes in float32, the mean's share in float64
    coords = rows @ axes.astype(np.float32)
    out[ok] = (coords.astype(np.float64) - mean @ axes).astype(np.float32)
    return out


#: rows of one chunk of the scatter matrix's sum (2048 x 768 float32: 6 MB, in cache with its product)
_SCATTER_ROWS = 2048


def _scatter(rows: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``(rows - mean).T @ (rows - mean)`` ``[dim, dim]``, summed in float64 a chunk of rows at a time.

    Each chunk is centred in float64 (no precision lost to a large mean), then multiplied in float32 (twice
    float64's speed: 100 k x 768 in ~0.75 s instead of ~1.3 s) and added to a float64 total: relative error
    ~4e-8, the principal axes equal to 1e-12. No float64 copy of all rows (600 MB at 100 k x 768) is made.
    """
    mean_t = torch.from_numpy(mean)
    total = torch.zeros(rows.shape[1], rows.shape[1], dtype=torch.float64)
    for start in range(0, len(rows), _SCATTER_ROWS):
        # (a copy of the chunk: the caller's array may be read-only, which torch refuses to wrap)
        centred = (torch.from_numpy(rows[start : start + _SCATTER_ROWS].astype(np.float64)) - mean_t).float()
        total += (centred.T @ centred).double()  # torch: several times numpy's speed on a busy machine
    return total.numpy()
